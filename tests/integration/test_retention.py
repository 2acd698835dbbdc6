"""Retention on a real store (issue 15): a dry run reports exactly what the run removes,
a longer policy keeps what a shorter one also matches, and inactive known profiles go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.errors import InvalidField
from tessera.governance import retention
from tessera.runtime import Runtime
from tests.integration.helpers import send


def at(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def history(runtime: Runtime, ages: list[int]) -> None:
    messages = []
    for n, age in enumerate(ages):
        messages.append({"type": "page", "anonymousId": f"a{n % 5}", "messageId": f"p{n}",
                         "name": "Home", "timestamp": at(age)})  # fmt: skip
        messages.append({"type": "track", "userId": f"u{n % 3}", "event": "Order Completed",
                         "messageId": f"o{n}", "timestamp": at(age)})  # fmt: skip
    send(runtime, messages)
    runtime.pipeline.process()


@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ages=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=12))
def test_a_dry_run_reports_exactly_what_the_run_removes(runtime: Runtime, ages: list[int]) -> None:
    runtime.store.execute("DELETE FROM events")
    runtime.store.execute("DELETE FROM retention_policies")
    runtime.pipeline.rebuild()
    history(runtime, ages)
    retention.set_policy(runtime.store, "pages", "events", 395, event="page")
    retention.set_policy(runtime.store, "orders", "events", 3650, event="Order Completed")
    retention.set_policy(runtime.store, "inactive", "profiles", 4000)
    before = runtime.store.fetch_one("SELECT count(*) FROM events")[0]  # type: ignore[index]
    dry = retention.run(runtime, dry_run=True)
    assert runtime.store.fetch_one("SELECT count(*) FROM events")[0] == before  # type: ignore[index]
    done = retention.run(runtime)
    assert done.counts == dry.counts and done.events == dry.events
    after = runtime.store.fetch_one("SELECT count(*) FROM events")[0]  # type: ignore[index]
    assert after == before - done.events
    assert retention.run(runtime, dry_run=True).events == 0


def test_a_longer_policy_keeps_what_a_shorter_one_also_matches(runtime: Runtime) -> None:
    history(runtime, [30, 500, 5000])
    retention.set_policy(runtime.store, "everything", "events", 400)
    retention.set_policy(runtime.store, "orders", "events", 3650, event="Order Completed")
    done = retention.run(runtime)
    kept = runtime.store.fetch_all("SELECT type, message_id FROM events ORDER BY message_id")
    assert kept == [("track", "o0"), ("track", "o1"), ("page", "p0")]
    assert done.events == 3
    [latest, *_] = retention.runs(runtime.store)
    assert latest.id == done.id and latest.events == 3


def test_a_policy_names_what_is_wrong(runtime: Runtime) -> None:
    with pytest.raises(InvalidField, match="scope"):
        retention.set_policy(runtime.store, "x", "forever", 3)
    with pytest.raises(InvalidField, match="identifier_type"):
        retention.set_policy(runtime.store, "x", "identifiers", 3)
    with pytest.raises(InvalidField, match="no source"):
        retention.set_policy(runtime.store, "x", "events", 3, source="nope")
