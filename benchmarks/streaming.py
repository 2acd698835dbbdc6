"""Streaming segments benchmark: pipeline throughput with 50 live segments, against none.

    python benchmarks/streaming.py [--people 10000] [--segments 50] [--json]

1. Loads the demo company (through the collect API, as `tessera demo` does).
2. Baseline: the pipeline works through the whole log from scratch in 20,000-event batches
   with no segments defined.
3. The same log again with `--segments` live segments (five typical shapes: trait filter,
   event count in a window, event with a property filter, property aggregate with an
   identifier, or/not with a window), refreshed for the profiles each batch touched every
   2 s (the default `TESSERA_SEGMENT_INTERVAL_SECONDS`) and every 10 s. No final sweep:
   this is the streaming path alone.
The ratio is events/s with segments over events/s without, in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import load_demo

from tessera.pipeline import DERIVED_TABLES
from tessera.profiles import catalogue
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.settings import Settings

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


def stream(data_dir: Path, interval: float) -> dict[str, object]:
    """Clear the derived tables and let the pipeline catch up batch by batch."""
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
        return runtime.pipeline.process(sweep=False).to_dict()
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera-stream-") as tmp:
        data_dir = Path(tmp) / "data"
        load_demo(data_dir, args.people)
        define_segments(data_dir, 0)
        rows = [{"run": "no segments", **stream(data_dir, 2.0)}]
        define_segments(data_dir, args.segments)
        for interval in (2.0, 10.0):
            label = f"{args.segments} segments, refresh every {interval:g} s"
            rows.append({"run": label, **stream(data_dir, interval)})
    base = float(rows[0]["events_per_second"])  # type: ignore[arg-type]
    for row in rows:
        row["ratio"] = round(float(row["events_per_second"]) / base, 2)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(rows, indent=2))
    print("| run | events | seconds | events/s | ratio to no segments |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['run']} | {row['events']:,} | {row['seconds']} "
            f"| {row['events_per_second']:,} | {row['ratio']} |"
        )


if __name__ == "__main__":
    main()
