"""Streaming segments benchmark: pipeline throughput with 50 live segments, against none.

    python benchmarks/streaming.py [--people 10000] [--segments 50] [--compare-warm]

1. Loads the demo company (through the collect API, as `tessera demo` does).
2. Baseline: the pipeline works through the whole log from scratch in 20,000-event batches
   with no segments defined.
3. The same log again with `--segments` live segments (five typical shapes: trait filter,
   event count in a window, event with a property filter, property aggregate with an
   identifier, or/not with a window), refreshed for the profiles each batch touched every
   2 s (the default `TESSERA_SEGMENT_INTERVAL_SECONDS`) and every 10 s. No final sweep:
   this is the streaming path alone.

Cold start: creating a segment evaluates it over everyone and records its members, and
membership (`segment_members`) is not among the tables a rebuild clears. Measured from
there, streaming would find every member already in place and write almost nothing, so
each run also clears the memberships (and segment failures): the streaming path then has
to discover and record every membership itself, as it does for a log that arrives live.
After each run the streamed memberships are checked against a batch evaluation of every
segment over everyone; the script exits 1 if they differ (the streaming path did not do
the work it claims). `--compare-warm` adds the old warm-start run for comparison.

The ratio is events/s with segments over events/s without, in the same run. Prints the
table on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit
from pipeline import load_demo

from tessera.pipeline import DERIVED_TABLES
from tessera.profiles import catalogue
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.segments.compiler import compile_segment
from tessera.segments.parser import parse
from tessera.settings import Settings
from tessera.store import Store

SHAPES = (
    'traits.country = "{country}"',
    'count(event "Order Completed" in last {days} days) >= 1',
    'did "Product Viewed" where properties.category = "{category}" in last {days} days',
    'sum(properties.revenue of event "Order Completed") > {money} and has email',
    'traits.city = "Paris" or not did "Email Opened" in last {days} days',
)
CATEGORIES = ("running", "fashion", "electronics", "home", "beauty", "travel")


def define_segments(data_dir: Path, count: int) -> None:
    runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench"))
    try:
        runtime.pipeline.process()
        names = catalogue.names(runtime.store)
        for segment in service.list_segments(runtime.store):
            service.delete(runtime.store, segment["name"])
        for i in range(count):
            query = SHAPES[i % len(SHAPES)].format(
                country=("FR", "DE", "ES", "GB")[i % 4],
                days=10 + 3 * i,
                category=CATEGORIES[i % len(CATEGORIES)],
                money=50 + 10 * i,
            )
            service.create(runtime.store, f"bench-{i}", query, names)
    finally:
        runtime.close()


def stream(data_dir: Path, interval: float, *, cold: bool = True) -> dict[str, Any]:
    """Clear the derived tables (and, cold, the memberships) and let the pipeline catch up
    batch by batch; then compare the streamed memberships with a batch evaluation."""
    settings = Settings(
        data_dir=data_dir,
        admin_token="bench",
        pipeline_batch_size=20_000,
        segment_interval_seconds=interval,
    )
    runtime = Runtime.open(settings)
    try:
        with runtime.store.transaction() as store:
            for table in DERIVED_TABLES:
                store.execute(f"DELETE FROM {table}")
            if cold:
                store.execute("DELETE FROM segment_members")
                store.execute("DELETE FROM segment_failures")
        run = runtime.pipeline.process(sweep=False).report().model_dump()
        return run | check_memberships(runtime.store)
    finally:
        runtime.close()


def check_memberships(store: Store) -> dict[str, Any]:
    """The open memberships the streaming path left, against every segment evaluated over
    everyone now. A window edge may move a profile between the last streaming refresh and
    this check only if one of its events sits within seconds of it: none in the demo."""
    streamed = set(store.fetch_all(
        "SELECT g.name, m.profile_id FROM segment_members m JOIN segments g "
        "ON g.id = m.segment_id WHERE m.left_at IS NULL"
    ))  # fmt: skip
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    batch: set[tuple[Any, ...]] = set()
    for segment in service.list_segments(store):
        compiled = compile_segment(parse(segment["query"]), now=now)
        batch |= {(segment["name"], row[0]) for row in
                  store.fetch_all(compiled.sql, compiled.parameters)}  # fmt: skip
    return {
        "memberships": len(streamed),
        "batch_memberships": len(batch),
        "missing_from_streamed": len(batch - streamed),
        "extra_in_streamed": len(streamed - batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument(
        "--compare-warm",
        action="store_true",
        help="also run from memberships kept from create (the old setup)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera-stream-") as tmp:
        data_dir = Path(tmp) / "data"
        load_demo(data_dir, args.people)
        define_segments(data_dir, 0)
        rows: list[dict[str, Any]] = [{"run": "no segments", **stream(data_dir, 2.0)}]
        define_segments(data_dir, args.segments)
        for interval in (2.0, 10.0):
            label = f"{args.segments} segments, refresh every {interval:g} s, cold"
            rows.append({"run": label, **stream(data_dir, interval)})
        if args.compare_warm:
            define_segments(data_dir, args.segments)  # create backfills the memberships
            label = f"{args.segments} segments, refresh every 2 s, warm (not the figure)"
            rows.append({"run": label, **stream(data_dir, 2.0, cold=False)})
    base = float(rows[0]["events_per_second"]) or 1.0
    for row in rows:
        row["ratio"] = round(float(row["events_per_second"]) / base, 2)
    table = Table(
        f"streaming segments: the demo's log from scratch, {args.people:,} people",
        ["run", "events", "seconds", "events/s", "ratio to no segments", "memberships streamed",
         "differences from batch"],
    )  # fmt: skip
    for row in rows:
        table.add(row["run"], row["events"], row["seconds"], row["events_per_second"],
                  row["ratio"], row["memberships"],
                  row["missing_from_streamed"] + row["extra_in_streamed"])  # fmt: skip
    problems = [
        f"MISMATCH in {row['run']!r}: {row['missing_from_streamed']:,} memberships a batch "
        f"evaluation finds were not streamed, {row['extra_in_streamed']:,} streamed ones it "
        "does not find"
        for row in rows if row["missing_from_streamed"] or row["extra_in_streamed"]
    ]  # fmt: skip
    emit({"people": args.people, "segments": args.segments, "runs": rows,
          "problems": problems}, table, notes=problems)  # fmt: skip
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
