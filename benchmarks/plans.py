"""Tracking plans at the door: events/s through the core's load path (the EventWriter
that loads the log in files into DuckDB, where plans are checked) with and without a
plan on the source, in one run on one machine.

    python benchmarks/plans.py [--events 200000] [--batch 2000]

Both runs load the same events, shaped like analytics-python's (a track with four
properties), read back from the log's own record format, in batches as the loader reads
them. `with plan (flag)` validates every event's properties against a JSON Schema
(compiled once) and records nothing (all valid); `with plan, 10% violating` records a
violation row for one event in ten. Prints a table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from tessera.eventlog import LOG_EVENT_SCHEMA, Position, ReadBatch
from tessera.eventlog.records import batch_of
from tessera.events.contract import Envelope, check_message
from tessera.events.timestamps import now_micros
from tessera.plans import service
from tessera.runtime import Runtime
from tessera.settings import Settings

PLAN = {
    "events": {"Product Viewed": {"properties": {
        "type": "object", "required": ["product_id", "price"],
        "properties": {"product_id": {"type": "string"}, "price": {"type": "number"},
                       "currency": {"type": "string", "enum": ["EUR", "USD"]},
                       "category": {"type": "string"}}}}},
}  # fmt: skip


def tables(runtime: Runtime, events: int, batch: int, violating: float) -> list[pa.Table]:
    source = runtime.sources.get("web")
    envelope = Envelope(source.id, source.channel, now_micros())
    found = []
    for start in range(0, events, batch):
        rows = []
        for n in range(start, min(start + batch, events)):
            bad = violating and n % int(1 / violating) == 0
            message: dict[str, Any] = {
                "type": "track", "event": "Product Viewed", "userId": f"u{n % 5000}",
                "messageId": f"m-{violating}-{n}",
                "properties": {"product_id": f"p{n % 300}", "price": "x" if bad else 9.99,
                               "currency": "EUR", "category": "shoes"},
            }  # fmt: skip
            rows.append(check_message(message, envelope, default_type=None, max_bytes=1 << 20))
        found.append(pa.Table.from_batches([batch_of(rows, LOG_EVENT_SCHEMA)]))
    return found


def measure(runtime: Runtime, loads: list[pa.Table]) -> float:
    started = time.perf_counter()
    for number, table in enumerate(loads):
        runtime.writer.load(ReadBatch(events=[table], positions={"bench": Position(1, number)}))
    return sum(t.num_rows for t in loads) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    report: dict[str, float] = {}
    for name, mode, violating in [("without a plan", None, 0.0), ("with plan (flag)", "flag", 0.0),
                                  ("with plan, 10% violating", "flag", 0.1)]:  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            runtime = Runtime.open(Settings(data_dir=Path(folder) / "data"))
            try:
                runtime.sources.create("web", "web")
                if mode is not None:
                    service.set_plan(runtime.store, "web", mode, PLAN)
                loads = tables(runtime, args.events, args.batch, violating)
                report[name] = round(measure(runtime, loads))
            finally:
                runtime.close()
    base = report["without a plan"]
    print("| load path | events/s | of without |", file=sys.stderr)
    print("| --- | --- | --- |", file=sys.stderr)
    for name, rate in report.items():
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |", file=sys.stderr)
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main()
