"""The pixel, the opt-out switch and cookie syncs over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.audiences.pixel import GIF
from tests.conftest import LiveServer, start_server

PARTNERS = {"dsp-one": "https://dsp.example/sync?tid={cookie_id}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("pixel") / "data",
        TESSERA_SYNC_PARTNERS=orjson.dumps(PARTNERS).decode(),
    )
    yield server
    server.stop()


def events(server: LiveServer, source: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{server.url}/api/events", params={"source": source, "limit": 100},
                       headers=server.admin)  # fmt: skip
    result: list[dict[str, object]] = answer.json()["items"]
    return result


def test_pixel_records_a_page_and_sets_a_first_party_cookie(live: LiveServer) -> None:
    key = live.create_source("pixel-site", "web")
    url = "https://shop.example/shoes?utm_source=newsletter"
    first = httpx.get(f"{live.url}/v1/pixel.gif", params={"wk": key, "url": url, "title": "Shoes"})
    assert first.status_code == 200 and first.content == GIF
    assert first.headers["content-type"] == "image/gif"
    assert first.headers["x-tessera-recorded"] == "yes"
    cookie = first.headers["set-cookie"]
    assert "Max-Age=7776000" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    cookie_id = cookie.split(";")[0].split("=")[1]
    again = httpx.get(f"{live.url}/v1/pixel.gif", params={"wk": key, "event": "Ad Clicked"},
                      cookies={"tessera_cid": cookie_id})  # fmt: skip
    assert again.headers["set-cookie"].startswith(f"tessera_cid={cookie_id};")
    landed = events(live, "pixel-site")
    assert [e["type"] for e in landed] == ["track", "page"]
    assert landed[1]["properties"]["url"] == url  # type: ignore[index]
    live.caught_up()
    profile = httpx.get(f"{live.url}/api/profiles/cookie_id:{cookie_id}", headers=live.admin)
    assert profile.status_code == 200 and profile.json()["event_count"] == 2


@pytest.mark.parametrize(
    "params",
    [{}, {"wk": "tsk_not-a-key"}, {"wk": "x", "url": "\x00" * 10}, {"wk": "x" * 10_000}],
)
def test_bad_input_still_gets_the_gif_and_says_why(
    live: LiveServer, params: dict[str, str]
) -> None:
    answer = httpx.get(f"{live.url}/v1/pixel.gif", params=params, cookies={"tessera_cid": "junk"})
    assert answer.status_code == 200 and answer.content == GIF
    assert answer.headers["x-tessera-recorded"] == "no"
    assert answer.headers["x-tessera-error"]
    assert "set-cookie" not in answer.headers


def test_a_url_that_cannot_be_parsed_still_gets_the_gif(live: LiveServer) -> None:
    key = live.create_source("pixel-ipv6", "web")
    answer = httpx.get(f"{live.url}/v1/pixel.gif?wk={key}&url=http://[::1")
    assert answer.status_code == 200 and answer.content == GIF
    assert answer.headers["x-tessera-recorded"] == "yes"


_PARAMS = st.dictionaries(
    st.sampled_from(["url", "ref", "title", "event", "mid", "p.x", "wk", "writeKey", "partner",
                     "puid", "undo"]),
    st.text(st.characters(exclude_categories=["Cs"])).flatmap(
        lambda text: st.sampled_from([text, "http://" + text, "https://[" + text])
    ),
    max_size=6,
)  # fmt: skip


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/pixel.gif", "/v1/sync", "/v1/optout"]), params=_PARAMS,
       raw=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30))  # fmt: skip
def test_pixel_endpoints_answer_a_gif_or_a_redirect_whatever_the_query(
    live: LiveServer, path: str, params: dict[str, str], raw: str
) -> None:
    answer = httpx.get(f"{live.url}{path}", params=params)
    assert answer.status_code in (200, 302), answer.text
    if answer.status_code == 200:
        assert answer.headers["content-type"] == "image/gif" and answer.content == GIF
    raw_answer = httpx.get(f"{live.url}{path}?{raw}")
    assert raw_answer.status_code in (200, 302)


def test_do_not_track_and_the_opt_out_cookie_are_honoured(live: LiveServer) -> None:
    key = live.create_source("pixel-private", "web")
    gpc = httpx.get(f"{live.url}/v1/pixel.gif", params={"wk": key}, headers={"Sec-GPC": "1"})
    assert gpc.content == GIF and gpc.headers["x-tessera-recorded"] == "yes"
    cookie_id = gpc.cookies["tessera_cid"]
    live.caught_up()
    consent = httpx.get(f"{live.url}/api/profiles/cookie_id:{cookie_id}/consent",
                        headers=live.admin).json()  # fmt: skip
    assert consent["purposes"]["advertising"] is False  # GPC: advertising refused
    assert consent["allowed"]["analytics"] is True
    switch = httpx.get(f"{live.url}/v1/optout")
    assert any(c.startswith("tessera_optout=1;") for c in switch.headers.get_list("set-cookie"))
    opted = httpx.get(f"{live.url}/v1/pixel.gif", params={"wk": key},
                      cookies={"tessera_optout": "1"})  # fmt: skip
    assert (
        opted.headers["x-tessera-recorded"].startswith("no") and "set-cookie" not in opted.headers
    )
    assert len(events(live, "pixel-private")) == 1  # the GPC hit only


def test_cookie_sync_with_an_allowed_partner_links_the_ids(live: LiveServer) -> None:
    key = live.create_source("pixel-sync", "ads")
    stranger = httpx.get(f"{live.url}/v1/sync", params={"partner": "evil", "wk": key})
    assert stranger.status_code == 200 and stranger.content == GIF
    assert "not allowed" in stranger.headers["x-tessera-error"]
    out = httpx.get(f"{live.url}/v1/sync", params={"partner": "dsp-one", "wk": key})
    assert out.status_code == 302
    cookie_id = out.headers["set-cookie"].split(";")[0].split("=")[1]
    assert out.headers["location"] == f"https://dsp.example/sync?tid={cookie_id}"
    back = httpx.get(
        f"{live.url}/v1/sync",
        params={"partner": "dsp-one", "wk": key, "puid": "D-77"},
        cookies={"tessera_cid": cookie_id},
    )
    assert back.headers["x-tessera-recorded"] == "yes"
    live.caught_up()
    ours = httpx.get(f"{live.url}/api/profiles/cookie_id:{cookie_id}", headers=live.admin).json()
    theirs = httpx.get(f"{live.url}/api/profiles/sync_dsp_one:D-77", headers=live.admin).json()
    assert ours["profile_id"] == theirs["profile_id"]


def test_the_pixel_tag_works_from_a_real_page(live: LiveServer, tmp_path: Path) -> None:
    """A browser-shaped request: the Referer and User-Agent of an <img> on a shop page."""
    key = live.create_source("pixel-browser", "web")
    answer = httpx.get(
        f"{live.url}/v1/pixel.gif",
        params={"wk": key, "url": "https://shop.example/", "ref": "https://news.example/"},
        headers={
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
            "Referer": "https://shop.example/",
        },
    )
    assert answer.headers["x-tessera-recorded"] == "yes"
    assert answer.headers["cache-control"].startswith("no-store")


def test_a_pixel_visit_becomes_a_signal_trait(live: LiveServer) -> None:
    key = live.create_source("pixel-signals", "web")
    hit = httpx.get(
        f"{live.url}/v1/pixel.gif",
        params={"wk": key, "url": "https://shop.example/travel/villas",
                "ref": "https://www.google.com/search?q=villas"},
        headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"},
    )  # fmt: skip
    cookie_id = hit.headers["set-cookie"].split(";")[0].split("=")[1]
    live.caught_up()
    document = {
        "signals": [
            {"name": "from_google", "when": {"referrer_domain": "google.com"}},
            {"name": "travel_path", "when": {"path_prefix": "/travel"}, "lifetime_days": 7},
            {"name": "phone_visitor", "when": {"device_type": "mobile"}},
        ]
    }
    loaded = httpx.put(f"{live.url}/api/audiences/signals", json=document, headers=live.admin)
    assert loaded.status_code == 200, loaded.text
    profile = httpx.get(
        f"{live.url}/api/profiles/cookie_id:{cookie_id}", params={"events": 0},
        headers=live.admin,
    ).json()  # fmt: skip
    computed = profile["computed_traits"]
    assert computed["from_google"] is True and computed["travel_path"] is True
    assert computed["phone_visitor"] is True
    bad = httpx.put(
        f"{live.url}/api/audiences/signals",
        json={"signals": [{"name": "x", "when": {"weather": "rain"}}]},
        headers=live.admin,
    )
    assert bad.status_code == 400 and "unknown condition" in bad.json()["message"]
