"""Tracking plans on a real store (issue 15): each mode at the door, violations with
their path and reason, blocked events in the dead letters, and a plan inferred from
recent events that accepts them."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.errors import InvalidField
from tessera.events import log
from tessera.events.screens import Screens
from tessera.plans import service
from tessera.plans.screen import PlanScreen
from tessera.runtime import Runtime
from tests.integration.helpers import send

PLAN = {
    "events": {
        "Order Completed": {"properties": {
            "type": "object", "required": ["total"],
            "properties": {"total": {"type": "number", "minimum": 0}}}},
        "page": {"properties": {"type": "object"}},
    },
    "identify": {"traits": {"type": "object", "properties": {"email": {"type": "string"}}}},
}  # fmt: skip


def messages() -> list[dict[str, Any]]:
    return [
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "ok",
         "properties": {"total": 12.5}},
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "neg",
         "properties": {"total": -3}},
        {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "unplanned"},
        {"type": "identify", "userId": "u1", "messageId": "traits", "traits": {"email": 42}},
        {"type": "page", "userId": "u1", "messageId": "page", "name": "Home"},
    ]  # fmt: skip


def plan_screen(runtime: Runtime) -> PlanScreen:
    screens = runtime.writer.screen
    assert isinstance(screens, Screens)
    found = screens.screens[1]
    assert isinstance(found, PlanScreen)
    return found


def stored(runtime: Runtime) -> list[str]:
    rows = runtime.store.fetch_all("SELECT message_id FROM events ORDER BY message_id")
    return [r[0] for r in rows]


def with_plan(runtime: Runtime, mode: str) -> None:
    runtime.sources.create("web", "web")
    service.set_plan(runtime.store, "web", mode, PLAN)
    plan_screen(runtime).invalidate()
    send(runtime, messages())


def test_flag_keeps_every_event_and_records_each_violation(runtime: Runtime) -> None:
    with_plan(runtime, "flag")
    assert stored(runtime) == ["neg", "ok", "page", "traits", "unplanned"]
    found = {(v.message_id, v.path, v.blocked) for v in service.violations(runtime.store, "web")}
    assert found == {("neg", "properties.total", False), ("unplanned", "event", False),
                     ("traits", "traits.email", False)}  # fmt: skip
    assert log.stats(runtime.store)["plan_violations"] == 3


def test_block_sends_violating_events_to_the_dead_letters(runtime: Runtime) -> None:
    with_plan(runtime, "block")
    assert stored(runtime) == ["ok", "page"]
    dead = runtime.store.fetch_all(
        "SELECT message_id, code, field FROM rejected ORDER BY message_id"
    )
    assert dead == [("neg", "plan_violation", "properties.total"),
                    ("traits", "plan_violation", "traits.email"),
                    ("unplanned", "plan_violation", "event")]  # fmt: skip


def test_allow_keeps_and_counts_without_recording(runtime: Runtime) -> None:
    with_plan(runtime, "allow")
    assert len(stored(runtime)) == 5
    assert service.violations(runtime.store, "web") == []
    assert plan_screen(runtime).allowed == 3


def test_an_inferred_plan_accepts_the_events_it_came_from(runtime: Runtime) -> None:
    runtime.sources.create("web", "web")
    send(runtime, [m for m in messages() if m["messageId"] in ("ok", "unplanned", "page")])
    proposed = service.infer(runtime.store, "web", days=30)
    assert set(proposed.plan["events"]) == {"Order Completed", "Signed Up", "page"}
    total = proposed.plan["events"]["Order Completed"]["properties"]
    assert total["properties"]["total"] == {"type": "number"} and total["required"] == ["total"]
    service.set_plan(runtime.store, "web", "block", proposed.plan)
    plan_screen(runtime).invalidate()
    send(runtime, [{"type": "track", "userId": "u2", "event": "Order Completed",
                    "messageId": "again", "properties": {"total": 3.0}}])  # fmt: skip
    assert "again" in stored(runtime)


def test_a_wrong_plan_is_refused_with_where(runtime: Runtime) -> None:
    runtime.sources.create("web", "web")
    with pytest.raises(InvalidField, match="mode"):
        service.set_plan(runtime.store, "web", "strict", PLAN)
    bad = {"events": {"X": {"properties": {"type": "nonsense"}}}}
    with pytest.raises(InvalidField, match=r"events\.X\.properties"):
        service.set_plan(runtime.store, "web", "flag", bad)
