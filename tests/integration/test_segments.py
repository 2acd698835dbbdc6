"""Segments on a real store: backfill, entering and leaving as events arrive and time
passes, why, overlap, and refusing what does not exist."""

from __future__ import annotations

from datetime import datetime

import pytest

from tessera.errors import Conflict
from tessera.identity.lookup import lookup
from tessera.pipeline import Pipeline
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.segments.check import SegmentCheckError
from tessera.segments.compiler import compile_segment
from tessera.segments.parser import parse
from tests.integration.helpers import send

COMPUTED = {"order_count", "total_revenue"}


def order(user: str, day: int, revenue: float, message: str) -> dict[str, object]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "messageId": message,
        "properties": {"revenue": revenue},
        "timestamp": f"2026-03-{day:02d}T10:00:00Z",
        "context": {"traits": {"country": "FR" if user != "bob" else "DE"}},
    }


def at(day: int) -> datetime:
    return datetime(2026, 3, day, 12, 0)


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    send(runtime, [order("ann", 1, 50, "1"), order("ann", 3, 70, "2"), order("bob", 2, 500, "3")])
    runtime.pipeline.process()
    return runtime


def profile(runtime: Runtime, user: str) -> str:
    return lookup(runtime.store, f"user_id:{user}", None)


def members(runtime: Runtime, name: str) -> set[str]:
    return set(service.member_ids(runtime.store, name))


def test_a_new_segment_is_filled_from_history_at_once(shop: Runtime) -> None:
    created = service.create(
        shop.store,
        "repeat-fr",
        'traits.country = "FR" and count(event "Order Completed") >= 2',
        COMPUTED,
        now=at(5),
    )
    assert created["size"] == 1
    assert members(shop, "repeat-fr") == {profile(shop, "ann")}


def test_members_enter_as_events_arrive_and_leave_as_windows_slide(shop: Runtime) -> None:
    service.create(
        shop.store, "recent", 'did "Order Completed" in last 4 days', COMPUTED, now=at(4)
    )
    assert members(shop, "recent") == {profile(shop, "ann"), profile(shop, "bob")}
    moves = service.evaluate(
        shop.store, "recent", now=at(6)
    )  # bob's order is 4 days and 2 hours old
    assert moves == {"size": 1, "entered": 0, "left": 1}
    assert members(shop, "recent") == {profile(shop, "ann")}
    send(shop, [order("bob", 6, 10, "4")])
    shop.pipeline.process()
    service.evaluate(shop.store, "recent", now=at(6))
    assert members(shop, "recent") == {profile(shop, "ann"), profile(shop, "bob")}
    stays = shop.store.fetch_all(
        "SELECT count(*), count(left_at) FROM segment_members m JOIN segments g "
        "ON g.id = m.segment_id WHERE g.name = 'recent' AND m.profile_id = ?",
        [profile(shop, "bob")],
    )
    assert stays == [(2, 1)]  # bob's history: entered, left, entered again


def test_why_overlap_and_segments_of_segments(shop: Runtime) -> None:
    service.create(shop.store, "big", "computed.total_revenue >= 300", COMPUTED, now=at(5))
    service.create(
        shop.store, "big-or-fr", 'in segment "big" or traits.country = "FR"', COMPUTED, now=at(5)
    )
    assert len(members(shop, "big-or-fr")) == 2
    why = service.why(shop.store, "big-or-fr", profile(shop, "bob"), now=at(5))
    assert why["holds"] and [p["holds"] for p in why["parts"]] == [True, False]
    pairs = {(o["first"], o["second"]): o["both_count"] for o in service.overlap(shop.store)}
    assert pairs[("big", "big-or-fr")] == 1
    with pytest.raises(Conflict, match="used by big-or-fr"):
        service.delete(shop.store, "big")


def test_unknown_names_are_refused_with_a_suggestion(shop: Runtime) -> None:
    with pytest.raises(SegmentCheckError) as caught:
        service.create(shop.store, "x", 'traits.contry = "FR"', COMPUTED)
    assert caught.value.suggestion == "country"
    assert "did you mean 'country'?" in caught.value.message
    with pytest.raises(SegmentCheckError, match="unknown event 'Order Complete'"):
        service.preview(shop.store, 'did "Order Complete"', COMPUTED)
    with pytest.raises(SegmentCheckError, match="unknown segment 'nope'"):
        service.preview(shop.store, 'in segment "nope"', COMPUTED)


def test_preview_does_not_save(shop: Runtime) -> None:
    result = service.preview(
        shop.store, 'sum(properties.revenue of "Order Completed") > 100', COMPUTED
    )
    assert result["size"] == 2 and "total revenue" in result["description"]
    assert service.list_segments(shop.store) == []


def everyone_in(runtime: Runtime, query: str) -> set[str]:
    """The segment evaluated over every profile, from the store, now."""
    compiled = compile_segment(parse(query), now="2026-12-31 00:00:00")
    return {r[0] for r in runtime.store.fetch_all(compiled.sql, compiled.parameters)}


def test_streaming_after_each_batch_equals_a_full_evaluation(runtime: Runtime) -> None:
    """Segments follow each pipeline batch for the profiles it touched only; the result
    must be what evaluating everyone gives (merges and segments of segments included)."""
    send(
        runtime,
        [
            order("ann", 1, 50, "1"),
            order("ann", 2, 70, "2"),
            {
                "type": "track",
                "userId": "bob",
                "event": "Product Viewed",
                "messageId": "3",
                "properties": {"category": "hats"},
                "timestamp": "2026-03-02T10:00:00Z",
            },
        ],
    )
    runtime.pipeline.process()
    definitions = {
        "buyers": 'count(event "Order Completed") >= 2',
        "fr": 'traits.country = "FR"',
        "fr-buyers": 'in segment "buyers" and in segment "fr"',
        "browsers": 'did "Product Viewed" and not did "Order Completed"',
    }
    for name, query in definitions.items():
        service.create(runtime.store, name, query, COMPUTED)
    # Bob (in Germany) buys twice; an anonymous visitor turns out to be Ann.
    send(
        runtime,
        [
            order("bob", 3, 10, "4"),
            order("bob", 4, 10, "5"),
            {"type": "page", "anonymousId": "cookie", "messageId": "6"},
            {
                "type": "track",
                "anonymousId": "cookie",
                "event": "Product Viewed",
                "messageId": "7",
                "properties": {"category": "shoes"},
            },
            {"type": "identify", "anonymousId": "cookie", "userId": "ann", "messageId": "8"},
        ],
    )
    streaming = Pipeline(
        runtime.store,
        runtime.settings.model_copy(
            update={"pipeline_batch_size": 2, "segment_interval_seconds": 0.0}
        ),
    )
    batches = 0
    # One batch of 2 events at a time; process() without the sweep ends with the streaming
    # refresh of the profiles that batch touched, so each step is a batch plus its refresh.
    while streaming.process(max_events=2, sweep=False).events:
        batches += 1
        streamed = {name: members(runtime, name) for name in definitions}
        for name, query in definitions.items():
            assert streamed[name] == everyone_in(runtime, query), (batches, name)
    assert batches == 3
    assert profile(runtime, "bob") in streamed["buyers"]
    assert streamed["fr-buyers"] == {profile(runtime, "ann")}
    assert streamed["browsers"] == set()  # Bob bought; the cookie's view is now Ann's
