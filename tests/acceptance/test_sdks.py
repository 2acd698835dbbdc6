"""The real Segment and RudderStack Python SDKs, pointed at a live Tessera by host only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer


def landed(server: LiveServer, source: str, limit: int = 1000) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = httpx.get(
        f"{server.url}/api/events", params={"limit": limit, "source": source}, headers=server.admin
    ).json()["items"]
    return result


def drive(client: Any, run: str) -> list[str]:
    """Every call type an SDK has, with our own messageIds to check afterwards."""
    ids: list[str] = []

    def next_id() -> str:
        ids.append(f"{run}-{len(ids)}-{uuid.uuid4()}")
        return ids[-1]

    for n in range(120):  # more than one batch (flush_at is 100)
        client.track(
            user_id=f"user-{n % 7}",
            event="Product Viewed",
            properties={"sku": f"sku-{n}", "price": 9.5},
            message_id=next_id(),
        )
    client.identify(
        user_id="user-1", traits={"email": "Jane@Example.com", "plan": "pro"}, message_id=next_id()
    )
    client.page(user_id="user-1", name="Home", properties={"path": "/"}, message_id=next_id())
    client.screen(user_id="user-1", name="Cart", message_id=next_id())
    client.group(user_id="user-1", group_id="acme", traits={"size": 10}, message_id=next_id())
    client.alias(previous_id="anon-9", user_id="user-1", message_id=next_id())
    client.track(anonymous_id="anon-9", event="Signed Up", message_id=next_id())
    client.flush()
    return ids


def test_segment_sdk_events_land_exactly_once(server: LiveServer) -> None:
    from segment.analytics import Client

    key = server.create_source("segment-sdk", "server")
    errors: list[Exception] = []
    client = Client(
        write_key=key, host=server.url, on_error=lambda e, _b: errors.append(e), max_retries=2
    )
    ids = drive(client, "segment")
    client.shutdown()
    assert errors == []
    events = landed(server, "segment-sdk")
    assert sorted(e["message_id"] for e in events) == sorted(ids)
    identify = next(e for e in events if e["type"] == "identify")
    assert identify["traits"]["email"] == "Jane@Example.com"


def test_rudderstack_sdk_with_gzip_lands_exactly_once(server: LiveServer) -> None:
    from rudderstack.analytics.client import Client

    key = server.create_source("rudder-sdk", "server")
    errors: list[Exception] = []
    client = Client(
        write_key=key,
        host=server.url,
        gzip=True,
        on_error=lambda e, _b: errors.append(e),
        max_retries=2,
    )
    ids = drive(client, "rudder")
    client.shutdown()
    assert errors == []
    assert sorted(e["message_id"] for e in landed(server, "rudder-sdk")) == sorted(ids)


@pytest.mark.parametrize("sdk", ["segment", "rudder"])
def test_sdk_retry_after_a_lost_answer_adds_nothing(server: LiveServer, sdk: str) -> None:
    """An SDK that never saw our 200 sends the same batch again: no duplicates."""
    if sdk == "segment":
        from segment.analytics.request import post
    else:
        from rudderstack.analytics.request import post  # type: ignore[no-redef]
    key = server.create_source(f"retry-{sdk}", "server")
    batch = [
        {
            "type": "track",
            "event": "Paid",
            "userId": "u",
            "messageId": str(uuid.uuid4()),
            "timestamp": "2024-05-01T10:00:00Z",
        }
        for _ in range(30)
    ]
    for _ in range(3):
        post(key, server.url, batch=batch)
    assert len(landed(server, f"retry-{sdk}")) == 30
