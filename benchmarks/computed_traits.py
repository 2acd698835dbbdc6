"""Computed traits benchmark: per-batch cost, incremental against the full recompute.

    python benchmarks/computed_traits.py [--sizes 100000,1000000] [--batch 2000] [--rounds 3]

For each log size, in one run and on the same file:

1. The log is grown to the size with synthetic commerce events (one person per 20 events,
   known by a user id; Order Completed with revenue and currency, Product Viewed with a
   category; times over a year, out of order) written in SQL, with the identity rows the
   pipeline would derive for them (one profile per user id: event_profiles, identities,
   profiles, its position), so that a million events load in seconds rather than the
   pipeline's minutes on this machine; then the aggregates are built from the log
   (`aggregate_store.fill`, timed) and restored as a restart does (timed).
2. Then `--rounds` times, interleaved: one pipeline batch of `--batch` new events, timing
   the computed-traits part of it (reading the batch's values, folding them into the
   aggregates, writing the touched profiles' values and state: `aggregate_store.update`
   and `write`), beside the whole batch; then the full recompute as the refresh did it
   before issue 12 (every trait over the whole history in SQL, and the table replaced).
   Profile summaries are not seeded, so the whole batch's time is indicative only.
3. The state's size in the store.

Eight traits: the four built-ins and four defined (a windowed count, a distinct count,
a most_frequent with a window, a last). Prints the table on stderr and the report as one
JSON line on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit

from tessera.events.timestamps import utc_now
from tessera.profiles import aggregate_store, catalogue
from tessera.profiles.aggregates import day_number
from tessera.runtime import Runtime
from tessera.settings import Settings

DEFINITIONS = [
    {"name": "views_30", "function": "count", "event": "Product Viewed", "window_days": 30},
    {"name": "categories", "function": "distinct_count", "property": "category"},
    {"name": "favourite_90", "function": "most_frequent", "event": "Product Viewed",
     "property": "category", "window_days": 90},
    {"name": "last_currency", "function": "last", "event": "Order Completed",
     "property": "currency"},
]  # fmt: skip

# Synthetic events after `$after`: person i % people, one in four an order. Times spread
# over the year before now, out of order (a prime stride), so late events are the rule.
GROW_SQL = """
INSERT INTO events BY NAME
SELECT i AS seq, $source AS source_id, 'web' AS channel, 'm' || i AS message_id,
       i::UBIGINT AS dedupe_key, 'track' AS type,
       CASE WHEN i % 4 = 0 THEN 'Order Completed' ELSE 'Product Viewed' END AS event,
       'u' || (i % $people) AS user_id,
       $now::TIMESTAMP - to_minutes((i * 7919) % 525600) AS timestamp,
       $now::TIMESTAMP AS received_at,
       CASE WHEN i % 4 = 0
            THEN '{"revenue": ' || (i % 200) || ', "currency": "'
                 || CASE WHEN i % 3 = 0 THEN 'EUR' ELSE 'USD' END || '"}'
            ELSE '{"category": "c' || (i % 37) || '"}' END AS properties,
       '{}' AS payload
FROM range($after + 1, $until + 1) AS r(i)
"""


# What the pipeline derives for those events: one profile per user id.
SEED_SQL = (
    "INSERT INTO event_profiles SELECT seq, 'prf_' || user_id FROM events "
    "WHERE seq > $after AND seq <= $until",
    "INSERT INTO identities SELECT 'user_id', user_id, 'prf_' || user_id, min(seq) "
    "FROM events WHERE seq > $after AND seq <= $until "
    "AND user_id NOT IN (SELECT value FROM identities) GROUP BY user_id",
    "INSERT INTO profiles SELECT profile_id, first_seq, NULL, NULL FROM identities "
    "WHERE profile_id NOT IN (SELECT profile_id FROM profiles)",
    "INSERT OR REPLACE INTO pipeline_state VALUES ('processed_seq', $until)",
)


class Stopwatch:
    """Accumulates the time spent in the functions it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def grow(runtime: Runtime, source: str, until: int, people: int, *, seed: bool = False) -> None:
    """Append events up to seq `until`; `seed`: with the rows the pipeline derives."""
    row = runtime.store.fetch_one("SELECT coalesce(max(seq), 0) FROM events")
    after = int(row[0]) if row else 0
    if until <= after:
        return
    runtime.store.execute(
        GROW_SQL,
        {"source": source, "people": people, "now": utc_now().isoformat(sep=" "),
         "after": after, "until": until},
    )  # fmt: skip
    if seed:
        with runtime.store.transaction() as store:
            for sql in SEED_SQL:
                parameters = {"after": after, "until": until}
                store.execute(sql, {k: v for k, v in parameters.items() if "$" + k in sql})


def measure(runtime: Runtime, source: str, size: int, batch: int, rounds: int) -> dict[str, Any]:
    people = max(size // 20, 1)
    grow(runtime, source, size, people, seed=True)
    traits = catalogue.definitions(runtime.store)
    runtime.store.execute("DELETE FROM trait_aggregate_keys")  # as if every trait were new
    started = time.perf_counter()
    aggregate_store.restore(runtime.store, traits, day_number(utc_now()))
    fill = time.perf_counter() - started
    runtime.pipeline.forget_memory()
    started = time.perf_counter()
    runtime.pipeline.load_memory()  # the graph and the aggregates, as a restart
    restore = time.perf_counter() - started
    started = time.perf_counter()
    aggregate_store.restore(runtime.store, traits, day_number(utc_now()))
    restore_traits = time.perf_counter() - started
    stopwatch = Stopwatch()
    update, write = aggregate_store.update, aggregate_store.write
    aggregate_store.update = stopwatch.wrap(update)  # type: ignore[assignment]
    aggregate_store.write = stopwatch.wrap(write)  # type: ignore[assignment]
    incremental, batches, full = [], [], []
    try:
        for _ in range(rounds):
            grow(runtime, source, size + batch * (len(batches) + 1), people)
            stopwatch.seconds = 0.0
            started = time.perf_counter()
            assert runtime.pipeline.run_batch(batch) == batch
            batches.append(time.perf_counter() - started)
            incremental.append(stopwatch.seconds)
            started = time.perf_counter()
            now = utc_now()
            catalogue.refresh(runtime.store, catalogue.recompute(runtime.store, traits, now), now)
            full.append(time.perf_counter() - started)
    finally:
        aggregate_store.update, aggregate_store.write = update, write  # type: ignore[assignment]
    state = runtime.store.fetch_one(
        "SELECT count(*), coalesce(sum(strlen(state)), 0) FROM trait_aggregates"
    )
    assert state is not None
    return {
        "events": size,
        "people": people,
        "restore_memory_s": round(restore, 2),
        "incremental_ms": [round(s * 1000, 1) for s in incremental],
        "batch_ms": [round(s * 1000, 1) for s in batches],
        "full_ms": [round(s * 1000, 1) for s in full],
        "restore_s": round(restore_traits, 2),
        "fill_from_log_s": round(fill, 2),
        "state_profiles": state[0],
        "state_mb": round(state[1] / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder), admin_token="bench", pipeline_batch_size=args.batch
        )
        runtime = Runtime.open(settings)
        try:
            for definition in DEFINITIONS:
                catalogue.save_definition(runtime.store, definition)
            source = runtime.sources.create("bench", "web").source.id
            for size in sizes:
                results.append(measure(runtime, source, size, args.batch, args.rounds))
                print(results[-1], file=sys.stderr)
        finally:
            runtime.close()
    table = Table(
        f"Computed traits per batch of {args.batch} events (8 traits), median of "
        f"{args.rounds}",
        ["events in the log", "people", "incremental (ms)", "whole batch (ms)",
         "full recompute (ms)", "full / incremental", "restore state (s)",
         "state from the log (s)", "state (MB)"],
    )  # fmt: skip
    for r in results:
        inc, full = statistics.median(r["incremental_ms"]), statistics.median(r["full_ms"])
        table.add(
            f"{r['events']:,}", f"{r['people']:,}", inc, statistics.median(r["batch_ms"]),
            full, round(full / inc, 1) if inc else None, r["restore_s"],
            r["fill_from_log_s"], r["state_mb"],
        )  # fmt: skip
    emit({"benchmark": "computed_traits", "batch": args.batch, "results": results}, table)


if __name__ == "__main__":
    main()
