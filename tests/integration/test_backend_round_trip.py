"""The CLI's RemoteBackend against the real app (a real store), through an injected
httpx transport: every model parses the server's JSON and dumps it back unchanged, so
`--json` prints what the API answers, and the models miss no field the server sends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from tessera.app import create_app
from tessera.backend import DestinationRequest, PolicyRequest, RemoteBackend
from tessera.results import wire
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN, basic_auth
from tests.receivers import Receiver


class Through(httpx.BaseTransport):
    """Hands each request to the app in this process and keeps the last JSON answer."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.last: Any = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.send(request)
        answer.read()
        if answer.headers.get("content-type", "").startswith("application/json"):
            self.last = answer.json()
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[RemoteBackend, Through, TestClient]]:
    app = create_app(Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN))
    with TestClient(app) as client:
        through = Through(client)
        backend = RemoteBackend("http://testserver", ADMIN_TOKEN, transport=through)
        yield backend, through, client
        backend.close()


def test_every_model_round_trips_the_server_json(
    remote: tuple[RemoteBackend, Through, TestClient],
) -> None:
    backend, through, client = remote
    checked: list[str] = []

    def same(name: str, call: Callable[[], object]) -> None:
        result = call()
        assert orjson.loads(wire(result)) == through.last, name
        checked.append(name)

    same("create_source", lambda: backend.create_source("web-shop", "web"))
    key = through.last["write_key"]
    batch = [
        {"type": "identify", "userId": f"u{n}", "anonymousId": f"a{n}", "messageId": f"m{n}",
         "traits": {"email": f"p{n}@example.com", "plan": "pro" if n % 2 else "free"}}
        for n in range(6)
    ] + [{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "o1",
          "properties": {"revenue": 12.5}}, {"type": "purchase", "messageId": "bad"}]  # fmt: skip
    sent = client.post("/v1/batch", content=orjson.dumps({"batch": batch}),
                       headers={"Authorization": basic_auth(key)})  # fmt: skip
    assert sent.status_code == 200
    same("process", backend.process)
    same("stats", backend.stats)
    same("list_sources", backend.list_sources)
    same("rotate_key", lambda: backend.rotate_key("web-shop"))
    same("set_enabled", lambda: backend.set_enabled("web-shop", True))
    same("tail", lambda: backend.tail(3, None))
    same("rejected", lambda: backend.rejected(3, "web-shop"))
    same("failed", lambda: backend.failed(10))
    same("replay_failed", backend.replay_failed)
    same("profile", lambda: backend.profile("user_id:u1", 5, None))
    same("profile as of", lambda: backend.profile("user_id:u1", 5, "2999-01-01"))
    same("search", lambda: backend.search("example.com", None, 2))
    same("explain", lambda: backend.explain("user_id:u1", "anonymous_id:a1"))
    same("computed_traits", backend.computed_traits)
    definition = {"name": "orders_90d", "function": "count", "event": "Order Completed",
                  "window_days": 90}  # fmt: skip
    same("define_trait", lambda: backend.define_trait(definition))
    same("preview_segment", lambda: backend.preview_segment('traits.plan = "pro"'))
    same("create_segment", lambda: backend.create_segment("pro", 'traits.plan = "pro"'))
    same("update_segment", lambda: backend.update_segment("pro", 'traits.plan = "pro" or known'))
    same("list_segments", backend.list_segments)
    same("show_segment", lambda: backend.show_segment("pro"))
    same("segment_members", lambda: backend.segment_members("pro", 2))
    same("segment_history", lambda: backend.segment_history("pro"))
    same("segment_why", lambda: backend.segment_why("pro", "user_id:u1"))
    same("segment_overlap", backend.segment_overlap)
    same("holdout", lambda: backend.holdout("pro", 0.2))
    same("campaign_report", lambda: backend.campaign_report(None, "Order Completed"))
    same("list_taxonomies", backend.list_taxonomies)
    same("third_party", backend.third_party)
    same("list_lookalikes", backend.list_lookalikes)
    same("show_signals", backend.show_signals)
    same("load_signals", lambda: backend.load_signals({"signals": []}))
    same("purge_anonymous", lambda: backend.purge_anonymous(True))
    same("unmerge", lambda: backend.unmerge("user_id:u2", "anonymous_id:a2", "test"))
    same("identity_match", lambda: backend.identity_match(False))
    same("identity_matches", lambda: backend.identity_matches(None, 10))
    same("rebuild", backend.rebuild)
    same("fit_predictions", backend.fit_predictions)
    same("show_predictions", backend.show_predictions)
    same("score_predictions", backend.score_predictions)
    person = backend.profile("user_id:u1", 1, None).profile_id
    same("profile_predictions", lambda: backend.profile_predictions(person))
    # Any identifier finds the person, as `profiles show` does (over HTTP too).
    assert backend.profile_predictions("user_id:u1").profile_id == person
    same("delete_segment", lambda: backend.delete_segment("pro"))
    same("delete_trait", lambda: backend.delete_trait("orders_90d"))
    assert len(checked) == 43


def test_every_destination_model_round_trips_the_server_json(
    remote: tuple[RemoteBackend, Through, TestClient],
) -> None:
    """With something in each part: a delivery log with minutes and an error, a dead
    letter, masked credentials, a secret shown once."""
    backend, through, client = remote
    checked: list[str] = []

    def same(name: str, call: Callable[[], object]) -> None:
        result = call()
        assert orjson.loads(wire(result)) == through.last, name
        checked.append(name)

    backend.create_source("web-shop", "web")
    key = through.last["write_key"]
    with Receiver("refuse") as receiver:
        webhook = DestinationRequest(
            "crm", "webhook", "email",
            {"url": receiver.url, "linger_seconds": 0, "headers": {"X-Team": "crm"},
             "mapping": [{"hash": "userId"}]},
        )  # fmt: skip
        same("create_destination", lambda: backend.create_destination(webhook))
        assert through.last["secret"].startswith("whsec_")
        mirror = DestinationRequest(
            "mirror", "segment", "analytics", {"url": receiver.url, "write_key": "wk_secret"}
        )
        same("create_destination segment", lambda: backend.create_destination(mirror))
        assert through.last["options"]["write_key"] == "********"
        events = [{"type": "track", "userId": f"u{n}", "event": "Bad" if n == 2 else "Good",
                   "messageId": f"m{n}"} for n in range(4)]  # fmt: skip
        sent = client.post("/v1/batch", content=orjson.dumps({"batch": events}),
                           headers={"Authorization": basic_auth(key)})  # fmt: skip
        assert sent.status_code == 200
        backend.process()
        receiver.wait_for(3)
        _until(lambda: backend.destination_deliveries("crm", 60).dead_letters == 1)

        same("destination_deliveries", lambda: backend.destination_deliveries("crm", 60))
        assert through.last["minutes"] and through.last["last_errors"]
        same("destination_dead_letters", lambda: backend.destination_dead_letters("crm", 10))
        assert through.last[0]["status"] == 400
        same("list_destinations", backend.list_destinations)
        same("show_destination", lambda: backend.show_destination("mirror"))
        same("set_destination_enabled", lambda: backend.set_destination_enabled("mirror", False))
        same("rotate_destination_secret", lambda: backend.rotate_destination_secret("crm"))
        same("replay_destination", lambda: backend.replay_destination("crm", True, None))
        since = datetime(2000, 1, 1, tzinfo=UTC)
        same("replay_destination since", lambda: backend.replay_destination("crm", False, since))
        assert through.last["position"] is not None
        same("delete_destination", lambda: backend.delete_destination("crm"))
    assert len(checked) == 11


def _until(check: Callable[[], bool], timeout: float = 60) -> None:
    """Until `check()` holds (the destinations deliver in their own threads)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the destination did not deliver in time"
        time.sleep(0.05)


def test_every_catalogue_and_loyalty_model_round_trips_the_server_json(
    remote: tuple[RemoteBackend, Through, TestClient], tmp_path: Path
) -> None:
    backend, through, _client = remote
    checked: list[str] = []

    def same(name: str, call: Callable[[], object]) -> None:
        result = call()
        assert orjson.loads(wire(result)) == through.last, name
        checked.append(name)

    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        '{"product_id": "a1", "name": "Shoe", "category": "Sport > Running", "price": 10,'
        ' "colour": "red"}\n{"name": "no id"}\n'
    )
    same("import_catalog", lambda: backend.import_catalog(feed, None))
    same("list_products", lambda: backend.list_products("shoe", "Sport", None, 5))
    same("show_product", lambda: backend.show_product("a1"))
    same("set_product_retired", lambda: backend.set_product_retired("a1", True))
    same("set_product_retired back", lambda: backend.set_product_retired("a1", False))
    same("show_loyalty before", backend.show_loyalty)
    same("load_loyalty", lambda: backend.load_loyalty("tiers: {Member: 0, Gold: 100}\n"))
    same("show_loyalty", backend.show_loyalty)
    assert len(checked) == 8


def test_every_access_model_round_trips_the_server_json(
    remote: tuple[RemoteBackend, Through, TestClient],
) -> None:
    """Users, tokens, the audit log and consent, parsed by the CLI as the API answers."""
    backend, through, client = remote
    checked: list[str] = []

    def same(name: str, call: Callable[[], object]) -> None:
        result = call()
        assert orjson.loads(wire(result)) == through.last, name
        checked.append(name)

    backend.create_source("desk", "phone")
    key = through.last["write_key"]
    sent = client.post(
        "/v1/identify",
        headers={"Authorization": basic_auth(key)},
        json={"userId": "u-9", "traits": {"email": "nine@example.com"}},
    )
    assert sent.status_code == 200
    backend.process()
    same("create_user", lambda: backend.create_user("desk-1", "agent", "twelve chars+"))
    same("set_user_role", lambda: backend.set_user_role("desk-1", "analyst"))
    same("set_user_enabled", lambda: backend.set_user_enabled("desk-1", False))
    same("list_users", backend.list_users)
    same("create_token", lambda: backend.create_token("desk-1", ["segments:read"], "1d", "x"))
    same("list_tokens", lambda: backend.list_tokens("desk-1"))
    same("revoke_token", lambda: backend.revoke_token(through.last[0]["id"]))
    same("change_consent", lambda: backend.change_consent("user_id:u-9", {"email": False}, "asked"))
    same("consent_state", lambda: backend.consent_state("user_id:u-9"))
    same("audit_page", lambda: backend.audit_page({"action": "POST"}, 10, None))
    same("audit_verify", backend.audit_verify)
    assert len(checked) == 11


def test_every_privacy_and_plan_model_round_trips_the_server_json(
    remote: tuple[RemoteBackend, Through, TestClient],
) -> None:
    """Data-subject requests, retention and tracking plans (issue 15), with content in
    each: a person with events, a policy, a plan with a violation."""
    backend, through, client = remote
    checked: list[str] = []

    def same(name: str, call: Callable[[], object]) -> None:
        result = call()
        assert orjson.loads(wire(result)) == through.last, name
        checked.append(name)

    key = backend.create_source("app", "web").write_key
    batch = [
        {"type": "identify", "userId": "u-ann", "messageId": "a1",
         "traits": {"email": "ann@example.net"},
         "context": {"consent": {"categoryPreferences": {"Advertising": True}}}},
        {"type": "track", "userId": "u-ann", "event": "Order Completed", "messageId": "a2",
         "properties": {"total": 12}},
    ]  # fmt: skip
    sent = client.post("/v1/batch", content=orjson.dumps({"batch": batch}),
                       headers={"Authorization": basic_auth(key)})  # fmt: skip
    assert sent.status_code == 200
    backend.process()
    same("infer_plan", lambda: backend.infer_plan("app", 1))
    plan = {"events": {"Order Completed": {"properties": {"type": "object",
            "properties": {"total": {"type": "string"}}}}}}  # fmt: skip
    same("set_plan", lambda: backend.set_plan("app", "flag", plan))
    same("show_plan", lambda: backend.show_plan("app"))
    same("list_plans", backend.list_plans)
    time.sleep(0.6)  # the loader reads the plans again at most every 0.5 s
    batch = [{"type": "track", "userId": "u-bo", "event": "Order Completed", "messageId": "b1",
              "properties": {"total": 3}}]  # fmt: skip
    client.post("/v1/batch", content=orjson.dumps({"batch": batch}),
                headers={"Authorization": basic_auth(key)})  # fmt: skip
    backend.process()
    same("plan_violations", lambda: backend.plan_violations("app", 10))
    assert through.last[0]["path"] == "properties.total"
    same("privacy_access", lambda: backend.privacy_access("email:ann@example.net"))
    assert len(through.last["events"]) == 2
    same("privacy_suppress", lambda: backend.privacy_suppress("user_id:u-bo"))
    same("privacy_erase", lambda: backend.privacy_erase("user_id:u-ann"))
    assert through.last["state"] == "done", through.last["reasons"]
    same("privacy_requests", lambda: backend.privacy_requests(10))
    same("privacy_request", lambda: backend.privacy_request(through.last[0]["id"]))
    request = PolicyRequest("events", 30, event="Order Completed")
    same("set_retention_policy", lambda: backend.set_retention_policy("orders", request))
    same("retention_policies", backend.retention_policies)
    same("run_retention", lambda: backend.run_retention(True))
    same("retention_runs", lambda: backend.retention_runs(5))
    same("delete_retention_policy", lambda: backend.delete_retention_policy("orders"))
    same("delete_plan", lambda: backend.delete_plan("app"))
    assert len(checked) == 16
