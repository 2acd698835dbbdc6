"""Computed traits kept incrementally (issue 12) equal the full recompute, on a real DuckDB.

- A property test over random logs: several people whose identifiers merge, events that
  arrive out of time order, every function, `where` conditions and windows, processed in
  random batches; at a "now" that moves forward after each batch (pruning the buckets that
  left their windows), the values from the aggregates equal the SQL recompute over the
  whole history, and so does the state restored from the store.
- Through the real pipeline on a DuckDB file: a batch changes its profiles' computed
  traits and the segments that read them before the next batch, merges combine the
  aggregates, a restart reads them from the store, a new definition is filled from the log.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.events.timestamps import utc_now
from tessera.pipeline import driver
from tessera.profiles import aggregate_store, catalogue
from tessera.profiles.aggregates import day_number
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.settings import Settings
from tests.integration.helpers import send

#: every function, with and without a window, an event and `where` conditions
DEFINITIONS: list[dict[str, Any]] = [
    {"name": "views", "function": "count", "event": "Product Viewed"},
    {"name": "everything_5", "function": "count", "window_days": 5},
    {"name": "eur_spend", "function": "sum", "event": "Order Completed", "property": "revenue",
     "where": {"currency": "EUR"}},
    {"name": "spend_30", "function": "avg", "event": "Order Completed", "property": "revenue",
     "window_days": 30},
    {"name": "lowest", "function": "min", "property": "revenue"},
    {"name": "highest_7", "function": "max", "property": "revenue", "window_days": 7},
    {"name": "first_category", "function": "first", "property": "category"},
    {"name": "last_category_14", "function": "last", "event": "Product Viewed",
     "property": "category", "window_days": 14},
    {"name": "categories", "function": "distinct_count", "property": "category"},
    {"name": "categories_3", "function": "distinct_count", "property": "category",
     "window_days": 3, "where": {"quantity": 2}},
    {"name": "favourite", "function": "most_frequent", "property": "category"},
    {"name": "gift_favourite_10", "function": "most_frequent", "property": "category",
     "window_days": 10, "where": {"gift": True}},
    {"name": "since_view", "function": "recency_days", "event": "Product Viewed"},
    {"name": "since_any_4", "function": "recency_days", "window_days": 4},
]  # fmt: skip

BASE = datetime(2024, 3, 1)
PEOPLE = {
    "userId": [f"u{i}" for i in range(3)],
    "anonymousId": [f"a{i}" for i in range(5)],
    "email": [f"e{i}@x.co" for i in range(3)],
}
MISSING = object()


def _maybe(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([*values, None, MISSING])


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A track (or identify) by someone known by one to three identifiers: a message
    carrying two of them merges the profiles that held each."""
    message: dict[str, Any] = {"anonymousId": draw(st.sampled_from(PEOPLE["anonymousId"]))}
    if draw(st.booleans()):
        message["userId"] = draw(st.sampled_from(PEOPLE["userId"]))
    if draw(st.integers(0, 3)) == 0:
        message["context"] = {"traits": {"email": draw(st.sampled_from(PEOPLE["email"]))}}
    kind = draw(st.sampled_from(["Order Completed", "Product Viewed", "Product Viewed", None]))
    if kind is None:
        message["type"] = "identify"
    else:
        message |= {"type": "track", "event": kind}
        choices = {
            "revenue": _maybe([10, 2.5, 0, -3, "7", "n/a", "nan", "-inf"]),
            "category": _maybe(["hats", "shoes", "bags", 5]),
            "currency": _maybe(["EUR", "USD"]),
            "gift": _maybe([True, False]),
            "quantity": _maybe([2, "2", 2.5]),
        }
        properties = {k: v for k, s in choices.items() if (v := draw(s)) is not MISSING}
        message["properties"] = properties
    at = BASE + timedelta(days=draw(st.integers(0, 40)), hours=draw(st.integers(0, 23)))
    message["timestamp"] = at.isoformat() + "Z"
    return message


Rows = list[tuple[str, str, str | None]]


def comparable(rows: Rows) -> dict[tuple[str, str], Any]:
    return {
        (profile, name): None if value is None else orjson.loads(value)
        for profile, name, value in rows
    }


def assert_same(incremental: Rows, full: Rows) -> None:
    """Equal values; floats within rounding (a sum's order differs)."""
    mine, theirs = comparable(incremental), comparable(full)
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, float) or isinstance(mine[key], float):
            assert math.isclose(mine[key], value, rel_tol=1e-9), key
        else:
            assert mine[key] == value, key


def open_with_definitions(folder: Path, **overrides: Any) -> Runtime:
    runtime = Runtime.open(Settings(data_dir=folder, admin_token="t", **overrides))
    for definition in DEFINITIONS:
        catalogue.save_definition(runtime.store, definition)
    return runtime


@given(
    log=st.lists(messages(), min_size=1, max_size=40),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    steps=st.lists(st.integers(0, 5 * 24), min_size=7, max_size=7),
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_incremental_computed_traits_equal_the_full_recompute(
    tmp_path_factory: Any, log: list[dict[str, Any]], cuts: list[int], steps: list[int]
) -> None:
    runtime = open_with_definitions(tmp_path_factory.mktemp("traits"), pipeline_batch_size=4)
    try:
        send(runtime, [dict(m, messageId=f"m{i}") for i, m in enumerate(log)])
        traits = catalogue.definitions(runtime.store)
        now = BASE
        runtime.pipeline.clock = lambda: now
        for cut, step in zip([*cuts, len(log)], steps, strict=False):
            runtime.pipeline.process(max_events=cut, sweep=False)
            now += timedelta(hours=step)  # the clock moves on; buckets leave windows
            aggregates = runtime.pipeline.aggregates
            aggregates.prune(day_number(now))
            full = catalogue.recompute(runtime.store, traits, now)
            assert_same(catalogue.current(runtime.store, aggregates, now), full)
        runtime.pipeline.process(sweep=False)
        full = catalogue.recompute(runtime.store, traits, now)
        assert_same(catalogue.current(runtime.store, runtime.pipeline.aggregates, now), full)
        # What the batches persisted (every few seconds), caught up from the log where it
        # is behind, is the same state.
        restored = aggregate_store.restore(runtime.store, traits)
        assert_same(catalogue.current(runtime.store, restored, now), full)
    finally:
        runtime.close()


def _values(runtime: Runtime, profile: str) -> dict[str, Any]:
    return {
        name: None if value is None else orjson.loads(value)
        for name, value in runtime.store.fetch_all(
            "SELECT name, value FROM computed_traits WHERE profile_id = ?", [profile]
        )
    }


def _profile(runtime: Runtime, user: str) -> str:
    row = runtime.store.fetch_one(
        "SELECT coalesce(p.merged_into, i.profile_id) FROM identities i "
        "JOIN profiles p ON p.profile_id = i.profile_id WHERE i.type = 'user_id' AND i.value = ?",
        [user],
    )
    assert row is not None
    return str(row[0])


def _members(runtime: Runtime, segment: str) -> set[str]:
    rows = runtime.store.fetch_all(
        "SELECT m.profile_id FROM segment_members m JOIN segments g ON g.id = m.segment_id "
        "WHERE g.name = ? AND m.left_at IS NULL",
        [segment],
    )
    return {r[0] for r in rows}


def _after_an_order(runtime: Runtime, user: str, revenue: float, index: int) -> tuple[Any, Any]:
    """One more order of `user`, processed: their order count and total revenue then."""
    send(runtime, [_order(user, revenue, index)])
    runtime.pipeline.process(sweep=False)
    values = _values(runtime, _profile(runtime, user))
    return values["order_count"], values["total_revenue"]


def _order(
    user: str | None, revenue: float, index: int, anonymous: str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "properties": {"revenue": revenue, "currency": "EUR"},
        "messageId": f"o{index}",
        "timestamp": (utc_now() - timedelta(hours=index)).isoformat() + "Z",
    }
    if user is not None:
        message["userId"] = user
    if anonymous is not None:
        message["anonymousId"] = anonymous
    return message


def test_a_batch_updates_computed_traits_and_their_segments_without_a_refresh(
    tmp_path: Path,
) -> None:
    """No refresh of computed traits runs (sweep=False): the batch itself writes the
    touched profiles' values, and the streaming segment refresh after it sees them."""
    runtime = open_with_definitions(tmp_path / "data", segment_interval_seconds=0)
    try:
        send(runtime, [_order("u1", 10, 1)])
        runtime.pipeline.process(sweep=False)
        service.create(runtime.store, "loyal", "computed.order_count >= 2", {"order_count"})
        jane = _profile(runtime, "u1")
        assert _values(runtime, jane)["order_count"] == 1
        assert jane not in _members(runtime, "loyal")

        send(runtime, [_order("u1", 30, 2)])
        runtime.pipeline.process(sweep=False)
        assert _values(runtime, jane)["order_count"] == 2
        assert _values(runtime, jane)["total_revenue"] == 40.0
        assert runtime.pipeline.computed[jane]["average_order_value"] == 20.0
        assert jane in _members(runtime, "loyal")
    finally:
        runtime.close()


def test_merged_profiles_combine_their_computed_traits(tmp_path: Path) -> None:
    runtime = open_with_definitions(tmp_path / "data", segment_interval_seconds=0)
    try:
        send(runtime, [_order(None, 5, 1, anonymous="cookie"), _order("u1", 10, 2)])
        runtime.pipeline.process(sweep=False)
        cookie = runtime.store.fetch_one("SELECT profile_id FROM identities WHERE value = 'cookie'")
        assert cookie is not None
        before = {cookie[0], _profile(runtime, "u1")}
        assert len(before) == 2
        # the visitor signs in: the cookie's profile and the customer's merge
        send(runtime, [_order("u1", 1, 3, anonymous="cookie")])
        runtime.pipeline.process(sweep=False)
        jane = _profile(runtime, "u1")
        (absorbed,) = before - {jane}
        assert _values(runtime, jane)["order_count"] == 3
        assert _values(runtime, jane)["total_revenue"] == 16.0
        assert _values(runtime, absorbed) == {}
        assert absorbed not in runtime.pipeline.computed
        now = utc_now()
        names = {t.name for t in catalogue.definitions(runtime.store)}
        full = [
            r
            for r in catalogue.recompute(runtime.store, catalogue.definitions(runtime.store), now)
            if r[1] in names
        ]
        stored = runtime.store.fetch_all("SELECT profile_id, name, value FROM computed_traits")
        # the batch values all but the traits the whole-population refresh values
        batch = names - catalogue.VALUED_ON_REFRESH
        assert_same(
            [(p, n, v) for p, n, v in stored if n in batch], [r for r in full if r[1] in batch]
        )
        runtime.pipeline.refresh_computed_traits()
        stored = runtime.store.fetch_all("SELECT profile_id, name, value FROM computed_traits")
        assert_same([(p, n, v) for p, n, v in stored if n in names], full)
    finally:
        runtime.close()


def test_a_restart_reads_the_aggregates_from_the_store_not_the_log(tmp_path: Path) -> None:
    """After a restart the events already processed are gone from the log (as if purged
    by hand): the next batch still counts them, so the state came from the store."""
    folder = tmp_path / "data"
    runtime = open_with_definitions(folder)
    try:
        send(runtime, [_order("u1", 10, 1), _order("u1", 20, 2)])
        runtime.pipeline.process(sweep=False)
    finally:
        runtime.close()
    runtime = Runtime.open(Settings(data_dir=folder, admin_token="t"))
    try:
        runtime.store.execute("DELETE FROM events")
        assert _after_an_order(runtime, "u1", 5, 3) == (3, 35.0)
    finally:
        runtime.close()


def test_aggregates_behind_after_a_crash_are_caught_up_from_the_log(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The aggregates are persisted every few seconds, not with each batch: after a crash
    between two saves, a batch (here with a merge) is in the store but not in them. The
    next start merges the stale states and adds the events in between from the log."""
    monkeypatch.setattr(driver, "AGGREGATES_SAVE_SECONDS", 3600.0)
    folder = tmp_path / "data"
    runtime = open_with_definitions(folder)
    try:
        send(runtime, [_order(None, 5, 1, anonymous="cookie"), _order("u1", 10, 2)])
        runtime.pipeline.process(sweep=False)  # the first batch saves them
        send(runtime, [_order("u1", 1, 3, anonymous="cookie"), _order("u2", 4, 4)])
        runtime.pipeline.process(sweep=False)  # this one does not: the merge is unsaved
        saved = runtime.store.fetch_one(
            "SELECT value FROM pipeline_state WHERE key = 'aggregates_seq'"
        )
        processed = runtime.store.fetch_one(
            "SELECT value FROM pipeline_state WHERE key = 'processed_seq'"
        )
        assert saved is not None and processed is not None and saved[0] < processed[0]
        monkeypatch.setattr(driver.Pipeline, "save_aggregates", lambda self: None)  # the crash
    finally:
        runtime.close()
    monkeypatch.undo()
    runtime = Runtime.open(Settings(data_dir=folder, admin_token="t"))
    try:
        now = utc_now()
        traits = catalogue.definitions(runtime.store)
        full = catalogue.recompute(runtime.store, traits, now)
        assert_same(catalogue.current(runtime.store, runtime.pipeline.aggregates, now), full)
        # persisted whole again: a second start reads the same state without the log
        runtime.store.execute("DELETE FROM events")
        memory = runtime.pipeline.aggregates
        restored = aggregate_store.restore(runtime.store, catalogue.batch_traits(traits))
        assert set(restored.profiles) == set(memory.profiles)
        assert all(restored.state_json(p) == memory.state_json(p) for p in memory.profiles)
        assert _after_an_order(runtime, "u1", 2, 5) == (4, 18.0)
    finally:
        runtime.close()


def test_a_trait_defined_later_is_filled_from_the_log(tmp_path: Path) -> None:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data", admin_token="t"))
    try:
        send(runtime, [_order("u1", 10, 1), _order("u1", 20, 2)])
        runtime.pipeline.process()
        catalogue.save_definition(
            runtime.store,
            {"name": "biggest", "function": "max", "event": "Order Completed",
             "property": "revenue"},
        )  # fmt: skip
        runtime.pipeline.refresh_computed_traits()
        jane = _profile(runtime, "u1")
        assert _values(runtime, jane)["biggest"] == 20.0
        send(runtime, [_order("u1", 50, 3)])
        runtime.pipeline.process(sweep=False)
        assert _values(runtime, jane)["biggest"] == 50.0
    finally:
        runtime.close()


def test_the_rebuild_recomputes_what_the_batches_kept(tmp_path: Path) -> None:
    runtime = open_with_definitions(tmp_path / "data")
    try:
        send(runtime, [_order("u1", 10, 1), _order("u2", 3, 2), _order("u1", 7.5, 3)])
        runtime.pipeline.process()
        kept = sorted(
            runtime.store.fetch_all("SELECT profile_id, name, value FROM computed_traits")
        )
        runtime.pipeline.rebuild()
        rebuilt = runtime.store.fetch_all("SELECT profile_id, name, value FROM computed_traits")
        assert_same(kept, sorted(rebuilt))
    finally:
        runtime.close()


def _stored(runtime: Runtime) -> Rows:
    rows = runtime.store.fetch_all("SELECT profile_id, name, value FROM computed_traits")
    return [(r[0], r[1], r[2]) for r in rows]


@given(
    log=st.lists(messages(), min_size=2, max_size=40),
    first=st.integers(1, 20),
    meanwhile=st.integers(0, 20),
    hours=st.lists(st.integers(0, 30), min_size=3, max_size=3),
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_refresh_computed_while_batches_run_keeps_what_they_wrote(
    tmp_path_factory: Any, log: list[dict[str, Any]], first: int, meanwhile: int,
    hours: list[int],
) -> None:  # fmt: skip
    """The loop's refresh (pipeline/refresh.py): its snapshot, then batches (merges among
    them) while it computes, then its changes applied. The batches' values survive it
    (every kept trait equals the aggregates' value at once), and the next refresh, light
    within the day or the sweep of a new one, ends equal to the full recompute, in the
    store and in memory alike."""
    runtime = open_with_definitions(tmp_path_factory.mktemp("refresh"), pipeline_batch_size=3)
    try:
        send(runtime, [dict(m, messageId=f"m{i}") for i, m in enumerate(log)])
        traits = catalogue.definitions(runtime.store)
        kept = {t.name for t in catalogue.batch_traits(traits)}
        now = BASE
        pipeline = runtime.pipeline
        pipeline.clock = lambda: now
        pipeline.process(max_events=first)  # with its sweep: the day's
        for step in hours:
            now += timedelta(hours=step)
            work = pipeline.begin_refresh()
            pipeline.process(max_events=meanwhile, sweep=False)
            outcome = work()
            pipeline.finish_refresh(lambda outcome=outcome: outcome)  # type: ignore[misc]
            aggregates = pipeline.aggregates
            aggregates.prune(day_number(now))
            current = [r for r in catalogue.current(runtime.store, aggregates, now)
                       if r[1] in kept]  # fmt: skip
            assert_same([r for r in _stored(runtime) if r[1] in kept], current)
        pipeline.process(sweep=False)
        pipeline.refresh_computed_traits()
        full = catalogue.recompute(runtime.store, traits, now)
        assert_same(_stored(runtime), full)
        memory = [(p, n, aggregate_store.as_json(v))
                  for p, found in pipeline.computed.items() for n, v in found.items()]  # fmt: skip
        assert_same(memory, full)
    finally:
        runtime.close()


def test_a_refresh_computed_across_a_rebuild_is_dropped(tmp_path: Path) -> None:
    """An erasure's (or replay's) rebuild reloads memory while a refresh computes: what
    that refresh computed before it is never written back."""
    runtime = open_with_definitions(tmp_path / "data")
    try:
        send(runtime, [_order("u1", 10, 1), _order("u2", 3, 2)])
        runtime.pipeline.process()
        work = runtime.pipeline.begin_refresh()
        outcome = work()
        before = sorted(_stored(runtime))
        runtime.store.execute("DELETE FROM events WHERE user_id = 'u2'")  # as an erasure does
        runtime.pipeline.rebuild()
        rebuilt = sorted(_stored(runtime))
        assert rebuilt != before
        assert runtime.pipeline.finish_refresh(lambda: outcome) == 0
        assert sorted(_stored(runtime)) == rebuilt
    finally:
        runtime.close()
