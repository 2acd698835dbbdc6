"""The pipeline's own cost, away from the server: events per thread-CPU-second, and one
whole-population refresh.

    python benchmarks/pipeline_cpu.py [--events 200000] [--batch 2000]
    PYTHONPATH=<other checkout> python benchmarks/pipeline_cpu.py ...   # another build, A/B

The freshness benchmark measures what users feel, but on two shared cores its figures move
with everything else the machine does. This one isolates the pipeline thread: `--events`
track calls shaped like the load generator's (benchmarks/_open_loop.py: 50,000 users, four
anonymous ids each) are written to a real DuckDB file through the event writer, the first
half is processed in `--batch`-event batches (warm-up: the store holds half the log), and the
second half is timed with `time.thread_time()` (the pipeline thread's CPU only, so a busy
machine blurs it much less than wall time). Then one whole-population refresh of computed
traits (`Pipeline.refresh_computed_traits`), timed the same way, and how long the loop's
refresh holds batches still (its snapshot and its apply: the work between them runs on a
worker thread, pipeline/refresh.py; a build without that split holds them for all of it).

Prints a table on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Last, so that PYTHONPATH=<other checkout> brings that build's tessera and tests (A/B).
sys.path.append(str(Path(__file__).resolve().parent.parent))
from _harness import Table, emit, track_message

from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import send

SENT_AT = "2026-12-01T10:00:00Z"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runtime = Runtime.open(Settings(data_dir=Path(folder) / "data", admin_token="t" * 32))
        try:
            report = measure(runtime, args.events, args.batch)
        finally:
            runtime.close()
    table = Table("pipeline thread CPU", ["measure", "value"])
    table.add("events timed (second half of the log)", report["timed_events"])
    table.add("events per thread-CPU-second", round(report["events_per_cpu_s"]))
    table.add("events per wall second", round(report["events_per_wall_s"]))
    table.add("profiles", report["profiles"])
    table.add("refresh thread CPU s", round(report["refresh_cpu_s"], 2))
    table.add("refresh wall s", round(report["refresh_wall_s"], 2))
    table.add("of which batches wait (loop's refresh) s", round(report["refresh_lock_held_s"], 2))
    emit(report, table)


def measure(runtime: Runtime, events: int, batch: int) -> dict[str, float | int]:
    for start in range(0, events, 10_000):
        send(runtime, [
            track_message(k, user_id=f"user-{(k * 7919) % 50_000}",
                          anonymous_id=f"anon-{k % 200_000}", message_id=f"cpu-{k}",
                          timestamp=SENT_AT)
            for k in range(start, min(events, start + 10_000))
        ])  # fmt: skip
    pipeline = runtime.pipeline
    done, half = 0, events // 2
    while done < half and pipeline.run_batch(batch):
        done += batch
    cpu, wall = time.thread_time(), time.monotonic()
    while pipeline.run_batch(batch):
        pass
    cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
    timed = events - done
    pipeline.refresh_computed_traits()  # the first fills what the batches do not keep
    refresh_cpu, refresh_wall = time.thread_time(), time.monotonic()
    pipeline.refresh_computed_traits()
    refresh_cpu, refresh_wall = time.thread_time() - refresh_cpu, time.monotonic() - refresh_wall
    held = refresh_wall  # a build without the split refresh holds batches for all of it
    if hasattr(pipeline, "begin_refresh"):
        # The loop's refresh: snapshot and apply hold the lock; the work between them
        # runs on a worker thread while batches go on (pipeline/refresh.py).
        started = time.monotonic()
        work = pipeline.begin_refresh()
        held = time.monotonic() - started
        outcome = work()
        started = time.monotonic()
        pipeline.finish_refresh(lambda: outcome)
        held += time.monotonic() - started
    row = runtime.store.fetch_one("SELECT count(*) FROM profiles WHERE merged_into IS NULL")
    return {
        "events": events,
        "batch": batch,
        "timed_events": timed,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "events_per_cpu_s": round(timed / cpu, 1),
        "events_per_wall_s": round(timed / wall, 1),
        "profiles": int(row[0]) if row else 0,
        "refresh_cpu_s": round(refresh_cpu, 3),
        "refresh_wall_s": round(refresh_wall, 3),
        "refresh_lock_held_s": round(held, 3),
    }


if __name__ == "__main__":
    main()
