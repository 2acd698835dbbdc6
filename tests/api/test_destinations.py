"""Destinations through a real `tessera serve`: the admin API, the CLI, delivery from
/v1 to a local webhook, and a kill -9 in the middle of delivery."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.demo import webhook
from tests.api.test_cli import as_json, tessera
from tests.conftest import LiveServer, basic_auth, start_server
from tests.receivers import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "data")
    yield server
    if server.process.poll() is None:
        server.stop()


def batch(key: str, first: int, count: int) -> dict[str, Any]:
    return {
        "batch": [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": f"u{n % 50}",
                "messageId": f"order-{n}",
                "properties": {"n": n},
            }
            for n in range(first, first + count)
        ]
    }


def post(server: LiveServer, key: str, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{server.url}/v1/batch", json=body, headers={"Authorization": basic_auth(key)}, timeout=30
    )
    assert response.status_code == 200, response.text


def test_destinations_are_managed_through_the_admin_api(live: LiveServer) -> None:
    api = f"{live.url}/api/destinations"
    body = {
        "name": "crm",
        "kind": "webhook",
        "purpose": "email",
        "options": {"url": "http://127.0.0.1:9/hook", "headers": {"X-Team": "crm"}},
    }
    created = httpx.post(api, json=body, headers=live.admin)
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")

    listed = httpx.get(api, headers=live.admin).json()
    assert [d["name"] for d in listed] == ["crm"] and "secret" not in listed[0]
    assert httpx.post(f"{api}/crm/disable", headers=live.admin).json()["enabled"] is False
    assert httpx.post(f"{api}/crm/enable", headers=live.admin).json()["enabled"] is True
    rotated = httpx.post(f"{api}/crm/rotate-secret", headers=live.admin).json()
    assert rotated["secret"] != created.json()["secret"]
    report = httpx.get(f"{api}/crm/deliveries", headers=live.admin).json()
    assert report["totals"]["delivered"] == 0 and report["dead_letters"] == 0
    assert httpx.get(f"{api}/crm/dead-letters", headers=live.admin).json() == []
    assert httpx.delete(f"{api}/crm", headers=live.admin).json()["deleted"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "carrier-pigeon"}, "kind"),
        ({"name": "x", "kind": "webhook"}, "url"),
        ({"name": "x", "kind": "webhook", "options": {"url": "ftp://a"}}, "url"),
        (
            {"name": "x", "kind": "webhook", "purpose": "fun", "options": {"url": "http://a"}},
            "purpose",
        ),
        ({"name": "x", "kind": "webhook", "options": {"url": "http://a", "batch": 3}}, "batch"),
        (
            {"name": "x", "kind": "webhook", "options": {"url": "http://a", "condition": "a >"}},
            "condition",
        ),
        (
            {"name": "x", "kind": "files", "options": {"directory": "/tmp/x", "segments": ["no"]}},
            "segments",
        ),
        ({"name": "x y", "kind": "webhook", "options": {"url": "http://a"}}, "name"),
    ],
)
def test_a_destination_that_cannot_work_is_refused_naming_the_field(
    server: LiveServer, body: dict[str, Any], field: str
) -> None:
    answer = httpx.post(f"{server.url}/api/destinations", json=body, headers=server.admin)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["success"] is False


def test_unknown_destination_is_404_and_replay_needs_what(server: LiveServer) -> None:
    api = f"{server.url}/api/destinations"
    assert httpx.get(f"{api}/nobody", headers=server.admin).status_code == 404
    assert httpx.get(api).status_code == 401
    httpx.post(
        api,
        headers=server.admin,
        json={"name": "r", "kind": "webhook", "options": {"url": "http://a"}},
    )
    assert httpx.post(f"{api}/r/replay", json={}, headers=server.admin).status_code == 400


def test_events_acked_at_v1_reach_the_webhook_signed(server: LiveServer) -> None:
    # The module's server: its other destination ("r", failing) is not this one's business.
    key = server.create_source("shop")
    with Receiver("healthy") as receiver:
        created = httpx.post(
            f"{server.url}/api/destinations",
            headers=server.admin,
            json={
                "name": "hook",
                "kind": "webhook",
                "options": {"url": receiver.url, "linger_seconds": 0.05},
            },
        ).json()
        post(server, key, batch(key, 0, 120))
        receiver.wait_for(120)
    assert {m["messageId"] for m in receiver.received} == {f"order-{n}" for n in range(120)}
    for signature, body in receiver.signatures:
        digest = hmac.new(created["secret"].encode(), body, hashlib.sha256).hexdigest()
        assert signature == f"sha256={digest}"
    report = as_json(tessera(server.data_dir, "destinations", "deliveries", "hook", "--json"))
    assert report["totals"]["delivered"] >= 120


def test_kill_9_mid_delivery_loses_nothing_and_duplicates_keep_their_message_id(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    total = 3000
    with Receiver("flaky", hang_seconds=3) as receiver:
        try:
            key = server.create_source("shop")
            httpx.post(
                f"{server.url}/api/destinations",
                headers=server.admin,
                json={
                    "name": "hook",
                    "kind": "webhook",
                    "options": {
                        "url": receiver.url,
                        "batch_size": 50,
                        "timeout_seconds": 1,
                        "linger_seconds": 0.05,
                    },
                },
            ).raise_for_status()
            for first in range(0, total, 500):
                post(server, key, batch(key, first, 500))
            receiver.wait_for(300, timeout=120)
            server.stop(kill=True)  # kill -9 while batches are in flight
            server = start_server(data_dir)
            receiver.wait_for(total, timeout=300)
        finally:
            server.stop()
    counts = Counter(receiver.message_ids())
    assert set(counts) == {f"order-{n}" for n in range(total)}
    for message in receiver.received:  # a duplicate is the same message, same id
        assert message["properties"]["n"] == int(message["messageId"].removeprefix("order-"))


def test_destinations_from_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "lake"
    created = as_json(
        tessera(
            data_dir,
            "destinations",
            "create",
            "lake",
            "--kind",
            "files",
            "--directory",
            str(folder),
            "--format",
            "parquet",
            "--json",
        )
    )
    assert created["options"]["file_format"] == "parquet" and created["secret"] is None
    listed = as_json(tessera(data_dir, "destinations", "list", "--json"))
    assert [d["name"] for d in listed] == ["lake"]
    refused = tessera(data_dir, "destinations", "create", "bad", "--kind", "webhook", expect=1)
    assert "needs --url" in refused.stderr
    replay = tessera(data_dir, "destinations", "replay", "lake", "--since", "yesterday", expect=1)
    assert "ISO 8601" in replay.stderr
    tessera(data_dir, "destinations", "disable", "lake")
    assert as_json(tessera(data_dir, "destinations", "show", "lake", "--json"))["enabled"] is False
    tessera(data_dir, "destinations", "delete", "lake")
    assert as_json(tessera(data_dir, "destinations", "list", "--json")) == []


def test_the_demo_ships_a_files_destination_and_a_webhook_example(tmp_path: Path) -> None:
    data = tmp_path / "data"
    summary = as_json(tessera(data, "demo", "--people", "150", "--seed", "3", "--json"))
    assert set(summary["destinations"]) == {"demo-lake", "demo-webhook"}
    shown = {d["name"]: d for d in as_json(tessera(data, "destinations", "list", "--json"))}
    assert shown["demo-lake"]["enabled"] and not shown["demo-webhook"]["enabled"]
    assert (data / "demo" / "webhook-secret").read_text().startswith("whsec_")
    server = start_server(data)
    try:
        deadline = time.monotonic() + 120
        while True:
            report = as_json(tessera(data, "destinations", "deliveries", "demo-lake", "--json"))
            if report["behind"] == 0 and report["totals"]["delivered"]:
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.5)
    finally:
        server.stop()
    spooled = (data / "demo" / "lake" / ".spool.jsonl").read_bytes().splitlines()
    finished = list((data / "demo" / "lake").glob("events-*.jsonl"))
    lines = len(spooled) + sum(len(f.read_bytes().splitlines()) for f in finished)
    assert lines >= summary["http_events"]


def test_the_demo_webhook_checks_signatures() -> None:
    body = b'{"batch": []}'
    signature = "sha256=" + hmac.new(b"whsec_x", body, hashlib.sha256).hexdigest()
    assert webhook.verified(body, signature, "whsec_x")
    assert not webhook.verified(body, signature, "whsec_y")
