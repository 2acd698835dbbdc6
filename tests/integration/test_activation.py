"""Destinations against a real DuckDB file and real local HTTP receivers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from tessera.activation import dead_letters, deliveries, destinations
from tessera.activation.engine import Activation, connector_for
from tessera.activation.worker import Worker
from tessera.results import wire
from tessera.runtime import Runtime
from tessera.segments import actions as segments
from tests.integration.helpers import send
from tests.receivers import FakeAdPlatform, Receiver


@pytest.fixture
def healthy() -> Iterator[Receiver]:
    with Receiver("healthy") as receiver:
        yield receiver


def track(n: int, user: str = "u1", event: str = "Order Completed", **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": f"m-{user}-{n}",
        "properties": {"n": n},
        **extra,
    }


def worker_for(runtime: Runtime, name: str) -> Worker:
    destination = destinations.configuration(runtime.store, name)
    secret = destinations.secret_of(runtime.store, destination.id)
    spool = runtime.settings.data_dir / "destinations"
    connector = connector_for(destination, secret, spool)
    return Worker(runtime.store, destination, connector, [], runtime.settings.advertising_consent)


def drain(worker: Worker, rounds: int = 50) -> None:
    """Run the worker's cycles in this thread until it has nothing left to do."""
    idle = 0
    for _ in range(rounds):
        idle = 0 if worker.cycle() else idle + 1
        if idle >= 2:
            return


def test_webhook_receives_every_event_signed_with_the_destination_secret(
    runtime: Runtime, healthy: Receiver
) -> None:
    created = destinations.create(
        runtime.store,
        "crm",
        "webhook",
        "analytics",
        {"url": healthy.url, "batch_size": 40, "linger_seconds": 0},
    )
    send(runtime, [track(n) for n in range(150)])
    runtime.pipeline.process()
    drain(worker_for(runtime, "crm"))

    assert sorted(healthy.message_ids()) == sorted(f"m-u1-{n}" for n in range(150))
    assert created.secret is not None
    for signature, body in healthy.signatures:
        expected = hmac.new(created.secret.encode(), body, hashlib.sha256).hexdigest()
        assert signature == f"sha256={expected}"
    first = healthy.received[0]
    assert first["type"] == "track" and first["event"] == "Order Completed"
    assert "tessera" not in first.get("context", {})
    assert deliveries.report(runtime.store, "crm").totals["delivered"] == 150


def test_a_new_destination_starts_at_the_end_of_the_log_and_replay_since_sends_the_past(
    runtime: Runtime, healthy: Receiver
) -> None:
    send(runtime, [track(n) for n in range(10)])
    runtime.pipeline.process()
    destinations.create(
        runtime.store, "late", "webhook", "analytics", {"url": healthy.url, "linger_seconds": 0}
    )
    drain(worker_for(runtime, "late"))
    assert healthy.message_ids() == []

    dead_letters.replay(
        runtime.store,
        "late",
        since=destinations.configuration(runtime.store, "late").created_at.replace(year=2000),
    )
    drain(worker_for(runtime, "late"))
    assert sorted(healthy.message_ids()) == sorted(f"m-u1-{n}" for n in range(10))


def test_restart_resumes_from_the_stored_position(runtime: Runtime, healthy: Receiver) -> None:
    destinations.create(
        runtime.store, "crm", "webhook", "analytics", {"url": healthy.url, "linger_seconds": 0}
    )
    send(runtime, [track(n) for n in range(5)])
    runtime.pipeline.process()
    drain(worker_for(runtime, "crm"))
    send(runtime, [track(n) for n in range(5, 8)])
    runtime.pipeline.process()
    drain(worker_for(runtime, "crm"))  # a new worker, as after a restart

    assert healthy.message_ids() == [f"m-u1-{n}" for n in range(8)]


def test_a_refused_message_goes_to_the_dead_letters_and_the_others_arrive(
    runtime: Runtime,
) -> None:
    with Receiver("refuse") as receiver:
        destinations.create(
            runtime.store,
            "crm",
            "webhook",
            "analytics",
            {"url": receiver.url, "batch_size": 10, "linger_seconds": 0},
        )
        send(runtime, [track(n, event="Bad" if n == 3 else "Good") for n in range(10)])
        runtime.pipeline.process()
        drain(worker_for(runtime, "crm"))

        assert sorted(receiver.message_ids()) == sorted(f"m-u1-{n}" for n in range(10) if n != 3)
        [dead] = dead_letters.list_for(runtime.store, "crm")
        assert (dead.message_id, dead.status) == ("m-u1-3", 400)
        assert "nope" in dead.reason
        report = deliveries.report(runtime.store, "crm")
        assert report.totals["dead_lettered"] == 1
        assert report.last_errors[0].status == 400

        receiver.mode = "healthy"  # the receiver was fixed: replay the dead letters
        queued = dead_letters.replay(runtime.store, "crm", dead_letters=True)
        drain(worker_for(runtime, "crm"))
        assert queued.dead_letters_queued == 1
        assert "m-u1-3" in receiver.message_ids()
        assert dead_letters.list_for(runtime.store, "crm") == []


def test_people_whose_consent_refuses_the_purpose_are_suppressed_and_counted(
    runtime: Runtime, healthy: Receiver
) -> None:
    destinations.create(
        runtime.store, "ads", "webhook", "advertising", {"url": healthy.url, "linger_seconds": 0}
    )
    refusing = {"consent": {"categoryPreferences": {"Advertising": False}}}
    granting = {"consent": {"categoryPreferences": {"Advertising": True}}}
    send(
        runtime,
        [
            track(1, "no", context=refusing),
            track(2, "no"),
            track(1, "yes", context=granting),
            track(1, "unknown"),
        ],
    )
    runtime.pipeline.process()
    drain(worker_for(runtime, "ads"))

    # TESSERA_ADVERTISING_CONSENT=required (the default): no record is no consent.
    assert healthy.message_ids() == ["m-yes-1"]
    assert deliveries.report(runtime.store, "ads").totals["suppressed"] == 3


def test_filters_choose_events_by_name_type_and_condition(
    runtime: Runtime, healthy: Receiver
) -> None:
    destinations.create(
        runtime.store,
        "big-orders",
        "webhook",
        "analytics",
        {
            "url": healthy.url,
            "linger_seconds": 0,
            "event_names": ["Order Completed"],
            "condition": "properties.n > `2`",
            "mapping": [{"hash": "properties.email"}, {"set": "context.app", "value": "crm"}],
        },
    )
    send(
        runtime,
        [track(n, properties={"n": n, "email": " A@B.io"}) for n in range(5)]
        + [track(9, event="Viewed"), {"type": "identify", "userId": "u1", "messageId": "i"}],
    )
    runtime.pipeline.process()
    drain(worker_for(runtime, "big-orders"))

    assert sorted(healthy.message_ids()) == ["m-u1-3", "m-u1-4"]
    message = healthy.received[0]
    assert message["properties"]["email"] == hashlib.sha256(b"a@b.io").hexdigest()
    assert message["context"]["app"] == "crm"


def test_audience_sync_sends_the_members_then_who_enters_and_who_leaves(
    runtime: Runtime, healthy: Receiver
) -> None:
    send(
        runtime,
        [
            {
                "type": "identify",
                "userId": u,
                "messageId": f"i-{u}",
                "traits": {"plan": "pro", "email": f"{u}@x.io"},
            }
            for u in ("a", "b")
        ],
    )
    runtime.pipeline.process()
    segments.create(runtime, "pro", 'traits.plan = "pro"')
    destinations.create(
        runtime.store,
        "mail",
        "webhook",
        "email",
        {
            "url": healthy.url,
            "events": False,
            "segments": ["pro"],
            "identifiers": ["user_id", "email_sha256"],
        },
    )
    drain(worker_for(runtime, "mail"))
    entered = [m for m in healthy.received if m.get("event") == "Audience Entered"]
    assert sorted(m["userId"] for m in entered) == ["a", "b"]
    identify = next(m for m in healthy.received if m["type"] == "identify")
    assert identify["traits"]["pro"] is True

    send(
        runtime,
        [{"type": "identify", "userId": "a", "messageId": "i-a2", "traits": {"plan": "free"}}],
    )
    runtime.pipeline.process()
    segments.update(runtime, "pro", 'traits.plan = "pro"')
    before = len(healthy.received)
    drain(worker_for(runtime, "mail"))
    after = healthy.received[before:]
    assert [(m.get("event"), m["userId"]) for m in after if m["type"] == "track"] == [
        ("Audience Exited", "a")
    ]
    ids = {e["type"]: e["id"] for e in after[0]["context"]["externalIds"]}
    assert ids == {"user_id": "a", "email_sha256": hashlib.sha256(b"a@x.io").hexdigest()}


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_files_destination_rolls_files_listed_in_a_manifest(
    runtime: Runtime, tmp_path: Path, file_format: str
) -> None:
    folder = tmp_path / "lake"
    destinations.create(
        runtime.store,
        "lake",
        "files",
        "analytics",
        {
            "directory": str(folder),
            "file_format": file_format,
            "roll_bytes": 1024,
            "linger_seconds": 0,
        },
    )
    send(runtime, [track(n) for n in range(30)])
    runtime.pipeline.process()
    worker = worker_for(runtime, "lake")
    drain(worker)
    worker.connector.roll()  # type: ignore[attr-defined]

    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    assert sum(f["rows"] for f in manifest["files"]) == 30
    ids: list[str] = []
    for entry in manifest["files"]:
        path = folder / entry["name"]
        if file_format == "parquet":
            ids += pq.read_table(path).column("messageId").to_pylist()
        else:
            ids += [orjson.loads(line)["messageId"] for line in path.read_bytes().splitlines()]
    assert sorted(ids) == sorted(f"m-u1-{n}" for n in range(30))


def test_a_hanging_destination_costs_a_healthy_one_nothing(runtime: Runtime) -> None:
    with Receiver("hang") as hanging, Receiver("healthy") as healthy:
        for name, receiver in (("stuck", hanging), ("fine", healthy)):
            destinations.create(
                runtime.store,
                name,
                "webhook",
                "analytics",
                {"url": receiver.url, "timeout_seconds": 30, "batch_size": 20, "linger_seconds": 0},
            )
        engine = Activation(runtime.store, runtime.settings.data_dir, "required")
        engine.start()
        try:
            send(runtime, [track(n) for n in range(200)])
            runtime.pipeline.process()
            healthy.wait_for(200)
        finally:
            engine.stop()
        assert hanging.message_ids() == []
        report = deliveries.report(runtime.store, "stuck")
        assert report.position is not None and report.position < report.log_end


def test_a_flaky_destination_receives_every_event_with_stable_message_ids(
    runtime: Runtime,
) -> None:
    with Receiver("flaky", hang_seconds=5) as flaky:
        destinations.create(
            runtime.store,
            "flaky",
            "webhook",
            "analytics",
            {"url": flaky.url, "timeout_seconds": 0.5, "batch_size": 25, "linger_seconds": 0},
        )
        engine = Activation(runtime.store, runtime.settings.data_dir, "required")
        engine.start()
        try:
            send(runtime, [track(n) for n in range(300)])
            runtime.pipeline.process()
            flaky.wait_for(300, timeout=120)
        finally:
            engine.stop()
        assert set(flaky.message_ids()) == {f"m-u1-{n}" for n in range(300)}
        assert {500, 429, 0} <= set(flaky.answers)
        assert deliveries.report(runtime.store, "flaky").totals["retried"] > 0


def test_audience_syncs_reach_google_and_meta_fake_servers_in_their_formats(
    runtime: Runtime,
) -> None:
    platform = FakeAdPlatform()
    try:
        send(
            runtime,
            [
                {
                    "type": "identify",
                    "userId": u,
                    "messageId": f"i-{u}",
                    "traits": {"plan": "pro", "email": f"{u}@x.io"},
                    "context": {"consent": {"categoryPreferences": {"Advertising": True}}},
                }
                for u in ("a", "b")
            ],
        )
        runtime.pipeline.process()
        segments.create(runtime, "pro", 'traits.plan = "pro"')
        common = {
            "url": platform.url,
            "segments": ["pro"],
            "events": False,
            "identifiers": ["email_sha256"],
            "access_token": "t0ken",
        }
        destinations.create(
            runtime.store,
            "google",
            "google_customer_match",
            "advertising",
            {**common, "account": "123", "audience_id": "456"},
        )
        destinations.create(
            runtime.store,
            "meta",
            "meta_custom_audiences",
            "advertising",
            {**common, "audience_id": "789"},
        )
        drain(worker_for(runtime, "google"))
        drain(worker_for(runtime, "meta"))
        hashed = {u: hashlib.sha256(f"{u}@x.io".encode()).hexdigest() for u in ("a", "b")}
        assert platform.google == platform.meta == set(hashed.values())
        assert platform.jobs and all(j.endswith("/userLists/456") for j in platform.jobs.values())

        send(
            runtime,
            [{"type": "identify", "userId": "a", "messageId": "i-a2", "traits": {"plan": "free"}}],
        )
        runtime.pipeline.process()
        segments.update(runtime, "pro", 'traits.plan = "pro"')
        drain(worker_for(runtime, "google"))
        drain(worker_for(runtime, "meta"))
        assert platform.google == platform.meta == {hashed["b"]}
        assert platform.problems == []
        assert "t0ken" not in wire(destinations.get(runtime.store, "meta")).decode()
        assert "t0ken" not in repr(destinations.get(runtime.store, "meta"))
    finally:
        platform.stop()


def test_segment_destination_forwards_batches_with_the_write_key(
    runtime: Runtime, healthy: Receiver
) -> None:
    base = healthy.url.removesuffix("/hook")
    destinations.create(
        runtime.store, "mirror", "segment", "analytics",
        {"url": base, "write_key": "wk_123", "linger_seconds": 0},
    )  # fmt: skip
    send(runtime, [track(n) for n in range(3)])
    runtime.pipeline.process()
    drain(worker_for(runtime, "mirror"))

    assert healthy.message_ids() == ["m-u1-0", "m-u1-1", "m-u1-2"]
    path, authorization = healthy.requests_seen[0]
    assert path == "/v1/batch"
    assert authorization == "Basic " + base64.b64encode(b"wk_123:").decode()
    shown = orjson.loads(wire(destinations.get(runtime.store, "mirror")))
    assert shown["options"]["write_key"] == "********"
    assert destinations.get(runtime.store, "mirror").options.write_key == "********"
