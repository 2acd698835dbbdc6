"""Data-subject requests against a real `tessera serve` with its collector processes
(issue 15): a person present in every channel (the collect API through the collectors,
an import with a rejected row, a dead letter, a webhook and a files destination, a
third-party feed, an audience) is erased with a receipt per system, and no file of the
data directory (nor the files destination's folder) holds a byte of their identifiers;
the webhook is asked to forget them; their new events are dropped at the collectors."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.test_cli import tessera
from tests.conftest import ADMIN_TOKEN, LiveServer, basic_auth, start_server
from tests.receivers import Receiver

IAB = Path(__file__).resolve().parents[1] / "fixtures" / "iab"
EMAIL = "Jane.Doe@Example.com"
USER = "u-jane-4242"
PHONE = "+33 6 39 98 76 54"
COOKIE = "ck-jane-9a8b7c"
ANONYMOUS = "anon-jane-5d6e7f"
BOB = "bob.builder@example.org"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("privacy") / "data")
    yield server
    if server.process.poll() is None:
        server.stop()


def needles() -> list[bytes]:
    values = [EMAIL, USER, "+33639987654", COOKIE, ANONYMOUS]
    values.append(hashlib.sha256(EMAIL.lower().encode()).hexdigest())
    return [v.lower().encode() for v in values]


def holding(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes().lower()
            if any(n in data for n in needles()):
                found.append(str(path))
    return found


def post_batch(server: LiveServer, key: str, batch: list[dict[str, Any]]) -> None:
    sent = httpx.post(f"{server.url}/v1/batch", content=orjson.dumps({"batch": batch}),
                      headers={"Authorization": basic_auth(key)})  # fmt: skip
    assert sent.status_code == 200, sent.text


def stats(server: LiveServer) -> dict[str, Any]:
    return httpx.get(f"{server.url}/api/stats", headers=server.admin).json()


def wait(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_erasure_of_a_person_in_every_channel_leaves_no_byte_of_them(
    live: LiveServer, receiver: Receiver, tmp_path: Path
) -> None:
    admin, url = live.admin, live.url
    lake = tmp_path / "lake"
    key = live.create_source("web")
    live.create_source("crm", "crm")
    for body in (
        {"name": "hook", "kind": "webhook", "options": {"url": receiver.url, "linger_seconds": 0}},
        {"name": "lake", "kind": "files", "options": {"directory": str(lake), "roll_bytes": 1024}},
    ):
        created = httpx.post(f"{url}/api/destinations", headers=admin, json=body)
        assert created.status_code == 201, created.text
    taxonomy = IAB / "audience-taxonomy-1.1.tsv"
    with taxonomy.open("rb") as handle:
        httpx.post(f"{url}/api/audiences/taxonomies", headers=admin,
                   files={"file": (taxonomy.name, handle)}).raise_for_status()  # fmt: skip

    # The collect API, through the collector processes.
    post_batch(live, key, [
        {"type": "page", "anonymousId": ANONYMOUS, "messageId": "j1", "name": "Home",
         "context": {"externalIds": [{"id": COOKIE, "type": "cookie_id"}]}},
        {"type": "identify", "userId": USER, "anonymousId": ANONYMOUS, "messageId": "j2",
         "traits": {"email": EMAIL, "phone": PHONE, "firstName": "Jane"}},
        {"type": "track", "userId": USER, "event": "Order Completed", "messageId": "j3",
         "properties": {"total": 42.5, "contact": EMAIL}},
        {"type": "track", "userId": USER, "messageId": "j4-no-event-name",
         "context": {"traits": {"email": EMAIL}}},
        {"type": "identify", "userId": "u-bob-77", "messageId": "b1", "traits": {"email": BOB}},
    ])  # fmt: skip
    # An import with one row refused (a reject file and a stored upload).
    imported = httpx.post(
        f"{url}/api/imports", headers=admin, timeout=60,
        files={"file": ("crm.csv", f"id,email,note\n{USER},{EMAIL},vip\n,{EMAIL},no id\n")},
        data={"mapping": "identifiers: {userId: id, email: email}\ntraits: {note: note}\n",
              "source": "crm", "wait": "true"},
    )  # fmt: skip
    assert imported.status_code == 200, imported.text
    # A third-party feed naming her cookie.
    httpx.post(f"{url}/api/audiences/feeds", headers=admin,
               files={"file": ("feed.csv", f"cookie_id,segments\n{COOKIE},720\n")},
               data={"provider": "travelco"}).raise_for_status()  # fmt: skip
    segment = httpx.post(f"{url}/api/segments", headers=admin,
                         json={"name": "buyers", "query": 'did "Order Completed"'})  # fmt: skip
    assert segment.status_code in (200, 201), segment.text
    live.caught_up()
    wait(lambda: "j3" in receiver.message_ids(), "the webhook got her order")
    wait(lambda: holding(lake), "the files destination wrote her events")
    assert holding(live.data_dir), "she is on disk before the erasure"

    answer = httpx.post(f"{url}/api/privacy/erase", headers=admin,
                        json={"identifier": "email:jane.doe@example.com"}, timeout=120)  # fmt: skip
    assert answer.status_code == 200, answer.text
    request = answer.json()
    receipts = {r["system"]: r for r in request["receipts"]}
    assert request["state"] == "done", request["reasons"]
    assert receipts["table events"]["removed"] >= 4
    assert receipts["table rejected"]["removed"] >= 1
    assert receipts["table third_party_memberships"]["removed"] == 1
    assert receipts["destination hook"]["detail"].startswith("deletion accepted")
    assert receipts["proof"]["status"] == "done"
    assert "jane" not in request["subject"]
    assert holding(live.data_dir, lake) == []
    [deletion] = receiver.deletions
    assert {"type": "email", "value": "jane.doe@example.com"} in deletion["identifiers"]
    # Bob is untouched; she is unknown.
    assert httpx.get(f"{url}/api/profiles/email:{BOB}", headers=admin).status_code == 200
    assert httpx.get(f"{url}/api/profiles/user_id:{USER}", headers=admin).status_code == 404

    # Her SDK keeps sending, through the collectors: dropped, counted, not stored.
    events_before = stats(live)["events"]
    post_batch(live, key, [
        {"type": "track", "userId": USER, "event": "Viewed", "messageId": "j9"},
        {"type": "track", "anonymousId": "x-new", "event": "Viewed", "messageId": "j10",
         "context": {"traits": {"email": "JANE.DOE@example.com"}}},
        {"type": "track", "userId": "u-bob-77", "event": "Viewed", "messageId": "b9"},
    ])  # fmt: skip
    live.caught_up()
    assert stats(live)["events"] == events_before + 1
    assert httpx.get(f"{url}/api/profiles/user_id:{USER}", headers=admin).status_code == 404
    assert holding(live.data_dir, lake) == []

    # The request, listed over HTTP and shown through the CLI (which talks to the server).
    listed = httpx.get(f"{url}/api/privacy/requests", headers=admin).json()
    assert [r["id"] for r in listed] == [request["id"]]
    shown = orjson.loads(tessera(live.data_dir, "privacy", "show", request["id"], "--json").stdout)
    assert shown["state"] == "done" and shown["receipts"] == request["receipts"]


def test_access_answers_everything_held_as_json_and_html(live: LiveServer) -> None:
    admin, url = live.admin, live.url
    key = live.create_source("shop")
    post_batch(live, key, [
        {"type": "identify", "userId": "u-ann-1", "messageId": "a1",
         "traits": {"email": "ann@example.net", "city": "Lyon"},
         "context": {"consent": {"categoryPreferences": {"Advertising": False}}}},
        {"type": "track", "userId": "u-ann-1", "event": "Viewed <script>", "messageId": "a2"},
    ])  # fmt: skip
    live.caught_up()
    answer = httpx.post(f"{url}/api/privacy/access", headers=admin,
                        json={"identifier": "email:ann@example.net"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["profile"]["traits"]["city"] == "Lyon"
    assert report["profile"]["trait_sources"]["city"]["source"]
    assert len(report["events"]) == 2
    assert report["consent_history"][0]["consent"]["categoryPreferences"] == {"Advertising": False}
    assert report["request"]["kind"] == "access" and report["request"]["state"] == "done"
    page = httpx.post(f"{url}/api/privacy/access/html", headers=admin,
                      json={"identifier": "user_id:u-ann-1"})  # fmt: skip
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Lyon" in page.text and "<script>" not in page.text
    bad = httpx.post(f"{url}/api/privacy/access", headers=admin, json={"identifier": "nope"})
    assert bad.status_code == 400 and bad.json()["code"]
    assert httpx.post(f"{url}/api/privacy/erase", json={"identifier": "x:y"}).status_code == 401


def test_retention_and_the_console_page(live: LiveServer) -> None:
    policy = {"scope": "events", "event": "page", "days": 395}
    set_policy = httpx.put(f"{live.url}/api/privacy/retention/policies/old-pages",
                           headers=live.admin, json=policy)  # fmt: skip
    assert set_policy.status_code == 200 and set_policy.json()["days"] == 395
    dry = orjson.loads(tessera(live.data_dir, "privacy", "retention", "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True and dry["events"] == 0
    runs = httpx.get(f"{live.url}/api/privacy/retention/runs", headers=live.admin).json()
    assert runs[0]["id"] == dry["id"]
    with httpx.Client(base_url=live.url, follow_redirects=True) as console:
        console.post("/sign-in", data={"token": ADMIN_TOKEN})
        page = console.get("/privacy")
        assert page.status_code == 200 and "old-pages" in page.text
        filed = console.post(
            "/privacy", data={"identifier": "user_id:u-nobody", "kind": "suppress"}
        )
        assert filed.status_code == 200 and "suppression list" in filed.text
        refused = console.post("/privacy", data={"identifier": "nope", "kind": "erase"})
        assert refused.status_code == 400 and "TYPE:VALUE" in refused.text
        counted = console.post("/privacy/retention", data={"dry_run": "true"})
        assert "would remove 0 events" in counted.text


def test_tracking_plans_over_http_the_cli_and_the_source_page(live: LiveServer) -> None:
    key = live.create_source("app")
    post_batch(live, key, [{"type": "track", "userId": "p1", "event": "Order Completed",
                            "messageId": "t1", "properties": {"total": 10}}])  # fmt: skip
    live.caught_up()
    inferred = orjson.loads(
        tessera(live.data_dir, "plans", "infer", "app", "--days", "1", "--json").stdout
    )
    assert inferred["plan"]["events"]["Order Completed"]["properties"]["required"] == ["total"]
    saved = httpx.put(f"{live.url}/api/plans/app", headers=live.admin,
                      json={"mode": "block", "plan": inferred["plan"]})  # fmt: skip
    assert saved.status_code == 200, saved.text
    time.sleep(0.6)  # the loader reads the plans again at most every 0.5 s
    post_batch(live, key, [
        {"type": "track", "userId": "p1", "event": "Order Completed", "messageId": "t2",
         "properties": {"total": "ten"}},
        {"type": "track", "userId": "p1", "event": "Unplanned", "messageId": "t3"},
    ])  # fmt: skip
    live.caught_up()
    found = httpx.get(f"{live.url}/api/plans/app/violations", headers=live.admin).json()
    assert {(v["path"], v["blocked"]) for v in found} == {("properties.total", True),
                                                          ("event", True)}  # fmt: skip
    assert stats(live)["plan_violations"] >= 2
    with httpx.Client(base_url=live.url) as console:
        console.post("/sign-in", data={"token": ADMIN_TOKEN})
        page = console.get("/sources/app")
    assert "properties.total" in page.text and "block" in page.text
    wrong = {"mode": "flag", "plan": {"events": {"X": {"properties": 3}}}}
    refused = httpx.put(f"{live.url}/api/plans/app", headers=live.admin, json=wrong)
    assert refused.status_code == 400 and "events.X.properties" in refused.json()["message"]
