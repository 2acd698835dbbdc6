"""The pixel's pure parts: who the browser is, the message a hit stands for, its cookie."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.audiences import pixel


def test_a_malformed_cookie_is_not_an_id_and_privacy_signals_are_read() -> None:
    assert pixel.visitor({"tessera_cid": "x' OR 1=1"}, {}, "http").cookie_id is None
    good = "0123456789abcdef0123456789abcdef"
    assert pixel.visitor({"tessera_cid": good}, {}, "http").cookie_id == good
    assert pixel.visitor({}, {"dnt": "1"}, "http").refuses_advertising
    assert pixel.visitor({}, {"sec-gpc": "1"}, "http").refuses_advertising
    assert not pixel.visitor({}, {"sec-gpc": "1"}, "http").opted_out
    assert pixel.visitor({"tessera_optout": "1"}, {}, "http").opted_out
    assert not pixel.visitor({}, {}, "http").opted_out
    assert pixel.visitor({}, {"x-forwarded-proto": "https"}, "http").https


def test_a_page_view_carries_the_page_the_campaign_and_the_cookie_id() -> None:
    url = "https://shop.example/shoes/12?utm_source=newsletter&utm_campaign=spring"
    message = pixel.page_message(
        {"url": url, "ref": "https://www.google.com/", "title": "Shoes", "p.category": "shoes"},
        "c" * 32,
        "Mozilla/5.0",
    )
    assert message["type"] == "page" and message["name"] == "Shoes"
    assert message["context"]["page"]["path"] == "/shoes/12"
    assert message["context"]["campaign"] == {"source": "newsletter", "name": "spring"}
    assert message["context"]["externalIds"][0] == {
        "id": "c" * 32, "type": "cookie_id", "collection": "users", "encoding": "none"
    }  # fmt: skip
    assert message["properties"]["category"] == "shoes"
    assert message["properties"]["referrer"] == "https://www.google.com/"


def test_a_named_event_is_a_track_and_long_values_are_cut() -> None:
    message = pixel.page_message({"event": "Ad Clicked", "url": "x" * 5000}, "c" * 32, None)
    assert message["type"] == "track" and message["event"] == "Ad Clicked"
    assert len(message["context"]["page"]["url"]) == 2000


def test_cookie_attributes() -> None:
    plain = pixel.cookie_header("tessera_cid", "abc", 7_776_000, https=False)
    assert plain == "tessera_cid=abc; Max-Age=7776000; Path=/; SameSite=Lax"
    secure = pixel.cookie_header("tessera_cid", "abc", 60, https=True, cross_site=True)
    assert secure.endswith("SameSite=None; Secure")


def test_sync_links_our_cookie_and_the_partners_id() -> None:
    message = pixel.sync_message("DSP-One", "p-42", "c" * 32)
    types = [item["type"] for item in message["context"]["externalIds"]]
    assert types == ["cookie_id", "sync_dsp_one"]
    assert pixel.partner_redirect("https://dsp.example/s?tid={cookie_id}", "ab") == (
        "https://dsp.example/s?tid=ab"
    )


@pytest.mark.parametrize("url", ["http://[::1", "http://[not-ipv6]/x", "http://\uff03@ex.com/"])
def test_a_url_that_cannot_be_split_is_kept_without_path_or_campaign(url: str) -> None:
    message = pixel.page_message({"url": url + "?utm_source=x"}, "c" * 32, None)
    assert message["context"]["page"] == {"url": url + "?utm_source=x"}
    assert "campaign" not in message["context"]


@given(st.dictionaries(st.sampled_from(["url", "ref", "title", "event", "mid", "p.x", "wk"]),
                       st.text()))  # fmt: skip
def test_any_query_makes_a_message(params: dict[str, str]) -> None:
    message = pixel.page_message(params, "c" * 32, "agent")
    assert message["type"] in ("page", "track")


def test_gpc_is_an_advertising_refusal_and_a_tcf_string_is_kept_in_context() -> None:
    message = pixel.page_message(
        {"gdpr": "1", "gdpr_consent": "CP1jrQA"}, "c" * 32, None, refuses_advertising=True
    )
    assert message["context"]["consent"] == {"categoryPreferences": {"advertising": False}}
    assert message["context"]["tcf"] == "CP1jrQA"
    assert (
        "tcf"
        not in pixel.page_message({"gdpr": "0", "gdpr_consent": "x"}, "c" * 32, None)["context"]
    )
