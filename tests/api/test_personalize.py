"""The decision API over HTTP on one real server: what a publishable key may do (a decision
for the visitor it names, nothing else), what it may not (the admin API, sending events),
which credentials the decision API refuses (write keys, the admin token), CORS, no personal
data beyond the allow-list, the decision recorded; and the CLI through the server."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_cli import as_json, tessera
from tests.conftest import LiveServer, basic_auth, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("personalize") / "data",
        TESSERA_PERSONALIZE_EXPOSED_TRAITS='["traits.country"]',
        TESSERA_PERSONALIZE_EXPOSED_SEGMENTS='["legacy"]',
        TESSERA_COLLECTORS="0",
    )
    write_key = server.create_source("web")
    batch = [
        {"type": "identify", "userId": "u1", "messageId": "i1",
         "traits": {"email": "jane@example.com", "firstName": "Jane", "country": "FR"}},
        {"type": "track", "userId": "u1", "event": "Product Viewed", "messageId": "t1",
         "properties": {"product_id": "shoes", "name": "Trail shoes", "category": "running"}},
        {"type": "track", "userId": "u2", "event": "Product Viewed", "messageId": "t2",
         "properties": {"product_id": "shoes"}},
        {"type": "track", "userId": "u2", "event": "Order Completed", "messageId": "t3",
         "properties": {"products": [{"product_id": "socks"}]}},
    ]  # fmt: skip
    httpx.post(f"{server.url}/v1/batch", json={"batch": batch},
               headers={"Authorization": basic_auth(write_key)}).raise_for_status()  # fmt: skip
    server.caught_up()
    server.env["WRITE_KEY"] = write_key
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def key(live: LiveServer) -> str:
    created = httpx.post(f"{live.url}/api/personalize/keys", headers=live.admin,
                         json={"source": "web"})  # fmt: skip
    assert created.status_code == 201, created.text
    value = str(created.json()["key"])
    assert value.startswith("tpk_")
    listed = httpx.get(f"{live.url}/api/personalize/keys", headers=live.admin).json()
    assert value not in str(listed) and listed[0]["key_prefix"] == value[:10]
    return value


def _decide(live: LiveServer, headers: dict[str, str], **params: str) -> httpx.Response:
    return httpx.get(f"{live.url}/v1/personalize", params=params, headers=headers)


def test_a_publishable_key_reads_the_decision_for_the_visitor_it_names(
    live: LiveServer, key: str
) -> None:
    httpx.post(f"{live.url}/api/recommendations/train", headers=live.admin).raise_for_status()
    by_query = _decide(live, {}, userId="u1", key=key)
    assert by_query.status_code == 200, by_query.text
    decision = by_query.json()
    assert decision["personal"] is True
    assert decision["traits"] == {"country": "FR"}  # the allow-list, nothing else
    assert "jane" not in by_query.text.lower()
    by_basic = httpx.post(f"{live.url}/v1/personalize", json={"userId": "u1", "n": 1},
                          headers={"Authorization": basic_auth(key)})  # fmt: skip
    assert by_basic.status_code == 200 and len(by_basic.json()["recommendations"]) == 1
    deadline = time.monotonic() + 10
    while not any(d["visitor"] == "user_id:u1" for d in
                  httpx.get(f"{live.url}/api/decisions", headers=live.admin).json()):  # fmt: skip
        assert time.monotonic() < deadline, "the decision was not recorded"
        time.sleep(0.1)


def test_the_decision_api_refuses_write_keys_the_admin_token_and_no_key(
    live: LiveServer, key: str
) -> None:
    write_key = live.env["WRITE_KEY"]
    for headers in ({"Authorization": basic_auth(write_key)}, live.admin, {}):
        refused = _decide(live, headers, userId="u1")
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.json()["code"] == "invalid_publishable_key"
    assert _decide(live, {}, userId="u1", key=write_key).status_code == 401
    assert _decide(live, {}, userId="u1", key="tpk_made-up").status_code == 401


def test_a_publishable_key_opens_nothing_else(live: LiveServer, key: str) -> None:
    for headers in ({"Authorization": f"Bearer {key}"}, {"Authorization": basic_auth(key)}):
        for path in ("/api/offers", "/api/profiles/user_id:u1", "/api/decisions"):
            assert httpx.get(f"{live.url}{path}", headers=headers).status_code == 401
    sent = httpx.post(f"{live.url}/v1/track", headers={"Authorization": basic_auth(key)},
                      json={"userId": "u1", "event": "Forged", "messageId": "f1"})  # fmt: skip
    assert sent.status_code == 401


def test_a_revoked_key_stops_working(live: LiveServer) -> None:
    created = httpx.post(f"{live.url}/api/personalize/keys", headers=live.admin,
                         json={"source": "web"}).json()  # fmt: skip
    assert _decide(live, {}, anonymousId="a1", key=created["key"]).status_code == 200
    revoked = httpx.post(f"{live.url}/api/personalize/keys/{created['id']}/revoke",
                         headers=live.admin)  # fmt: skip
    assert revoked.json()["revoked_at"] is not None
    assert _decide(live, {}, anonymousId="a1", key=created["key"]).status_code == 401


def test_browsers_get_cors_and_bad_requests_get_clear_errors(live: LiveServer, key: str) -> None:
    origin = {"Origin": "https://shop.example"}
    preflight = httpx.options(f"{live.url}/v1/personalize", headers={
        **origin, "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    answer = _decide(live, origin, anonymousId="new-visitor", key=key)
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"
    assert answer.json()["personal"] is False
    missing = _decide(live, {}, key=key)
    assert missing.status_code == 400 and "anonymousId or userId" in missing.json()["message"]
    auth = {"Authorization": basic_auth(key), "Content-Type": "application/json"}
    for body in (b"[1]", b"{bad", b'{"userId": "u1", "n": 99}'):
        bad = httpx.post(f"{live.url}/v1/personalize", content=body, headers=auth)
        assert bad.status_code == 400, body
    wrong = base64.b64encode(b"\xff\xfe").decode()
    assert _decide(live, {"Authorization": f"Basic {wrong}"}, userId="u1").status_code == 401


def test_the_cli_creates_offers_and_looks_up_callers_through_the_server(
    live: LiveServer,
) -> None:
    condition = 'did "Product Viewed" where properties.product_id = "shoes"'
    created = as_json(tessera(live.data_dir, "offers", "create", "runners", "--title",
                              "10% off socks", "--condition", condition, "--json"))  # fmt: skip
    assert created["description"].startswith('did "Product Viewed"')
    card = as_json(tessera(live.data_dir, "personalize", "caller", " JANE@Example.com ", "--json"))
    assert card["name"] == "Jane" and card["decision"]["offers"][0]["name"] == "runners"
    assert card["consent"]["personalisation"] is True
    listed = httpx.get(f"{live.url}/api/offers", headers=live.admin).json()
    assert [o["name"] for o in listed] == ["runners"]


def test_segments_and_traits_flagged_exposed_or_named_in_the_settings_are_answered(
    live: LiveServer, key: str
) -> None:
    for name, query in (("legacy", 'traits.country = "FR"'), ("hidden", 'did "Product Viewed"')):
        made = httpx.post(f"{live.url}/api/segments", headers=live.admin,
                          json={"name": name, "query": query})  # fmt: skip
        assert made.status_code == 201 and made.json()["exposed"] is False, made.text
    viewers = httpx.post(
        f"{live.url}/api/segments",
        headers=live.admin,
        json={"name": "viewers", "query": 'did "Product Viewed"', "exposed": True},
    )
    assert viewers.status_code == 201 and viewers.json()["exposed"] is True, viewers.text
    assert _decide(live, {}, userId="u1", key=key).json()["segments"] == ["legacy", "viewers"]

    # the CLI through the server
    off = as_json(tessera(live.data_dir, "segments", "expose", "viewers", "--off", "--json"))
    assert off["exposed"] is False
    assert _decide(live, {}, userId="u1", key=key).json()["segments"] == ["legacy"]
    # the flag and the setting add up: unflagging a segment the setting names keeps it
    flagged = httpx.post(f"{live.url}/api/segments/hidden/expose", headers=live.admin)
    assert flagged.status_code == 200 and flagged.json()["exposed"] is True
    httpx.post(f"{live.url}/api/segments/legacy/unexpose", headers=live.admin).raise_for_status()
    assert _decide(live, {}, userId="u1", key=key).json()["segments"] == ["hidden", "legacy"]
    # a deleted exposed segment is answered no more, at once (the use case tells the
    # decision API: offers, keys and exposure changes do the same from every edge)
    doomed = httpx.post(f"{live.url}/api/segments", headers=live.admin, json={
        "name": "doomed", "query": 'did "Product Viewed"', "exposed": True})  # fmt: skip
    assert doomed.status_code == 201, doomed.text
    assert _decide(live, {}, userId="u1", key=key).json()["segments"] == [
        "doomed", "hidden", "legacy"]  # fmt: skip
    httpx.delete(f"{live.url}/api/segments/doomed", headers=live.admin).raise_for_status()
    assert _decide(live, {}, userId="u1", key=key).json()["segments"] == ["hidden", "legacy"]
    changed = httpx.put(f"{live.url}/api/segments/hidden", headers=live.admin,
                        json={"query": 'did "Product Viewed"', "exposed": False})  # fmt: skip
    assert changed.status_code == 200 and changed.json()["exposed"] is False
    listed = {s["name"]: s["exposed"] for s in
              httpx.get(f"{live.url}/api/segments", headers=live.admin).json()}  # fmt: skip
    assert listed == {"hidden": False, "legacy": False, "viewers": False}
    missing = httpx.post(f"{live.url}/api/segments/nope/expose", headers=live.admin)
    assert missing.status_code == 404 and "no segment named 'nope'" in missing.json()["message"]

    action = {"action": "POST /api/segments/{name}/"}
    audited = httpx.get(f"{live.url}/api/audit", headers=live.admin, params=action).json()["items"]
    assert [(e["action"].rsplit("/", 1)[1], e["target"]) for e in audited][:3] == [
        ("expose", "nope"), ("unexpose", "legacy"), ("expose", "hidden")
    ]  # fmt: skip

    # traits too: flagged one by one, beside the setting (traits.country)
    base = f"{live.url}/api/personalize/traits"
    named = httpx.post(f"{base}/traits.firstName/expose", headers=live.admin).json()
    assert named == {"flagged": ["traits.firstName"], "from_setting": ["traits.country"],
                     "exposed": ["traits.country", "traits.firstName"]}  # fmt: skip
    assert _decide(live, {}, userId="u1", key=key).json()["traits"] == {
        "country": "FR", "firstName": "Jane"
    }  # fmt: skip
    httpx.post(f"{base}/traits.firstName/unexpose", headers=live.admin).raise_for_status()
    httpx.post(f"{base}/traits.country/unexpose", headers=live.admin).raise_for_status()
    assert _decide(live, {}, userId="u1", key=key).json()["traits"] == {"country": "FR"}
    bad = httpx.post(f"{base}/firstName/expose", headers=live.admin)
    assert bad.status_code == 400 and "traits.NAME or computed.NAME" in bad.json()["message"]


def test_a_person_who_changes_is_answered_as_who_they_are_now(live: LiveServer, key: str) -> None:
    """Between the refreshes over everyone (a minute by default), the decision memory
    follows the profiles the pipeline changes: a person who becomes eligible for an offer,
    or enters an exposed segment, is answered so within the pipeline's freshness."""
    headers = {"Authorization": basic_auth(live.env["WRITE_KEY"])}

    def identify(plan: str, message: str) -> None:
        sent = httpx.post(f"{live.url}/v1/identify", headers=headers, json={
            "userId": "u9", "messageId": message, "traits": {"plan": plan}})  # fmt: skip
        assert sent.status_code == 200, sent.text
        live.caught_up()

    def answered() -> tuple[list[str], list[str]]:
        decision = _decide(live, {}, userId="u9", key=key).json()
        return [o["name"] for o in decision["offers"]], decision["segments"]

    identify("free", "p1")  # a condition names known traits: `plan` is one now
    made = httpx.post(f"{live.url}/api/offers", headers=live.admin, json={
        "name": "upgrade", "title": "Pro for less", "condition": 'traits.plan = "pro"',
        "priority": 90})  # fmt: skip
    assert made.status_code == 201, made.text
    segment = httpx.post(f"{live.url}/api/segments", headers=live.admin, json={
        "name": "pros", "query": 'traits.plan = "pro"', "exposed": True})  # fmt: skip
    assert segment.status_code == 201, segment.text
    deadline = time.monotonic() + 30
    while answered() != ([], []) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answered() == ([], [])
    identify("pro", "p2")
    while answered() != (["upgrade"], ["pros"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answered() == (["upgrade"], ["pros"])
