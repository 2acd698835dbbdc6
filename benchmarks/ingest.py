"""Ingest benchmark: durable events/s through /v1/batch, beside two same-run baselines.

    python benchmarks/ingest.py [--batches 3000] [--batch-size 100] [--connections 32]
                                [--collectors 0,1,2,3]

1. tessera: a real `tessera serve` on 127.0.0.1 takes 100-event batches as the SDKs
   send them (full validation, group commit into the event log's files; 200 only after
   the fsync; the loader dedupes and loads them into DuckDB beside it), with its
   pipeline (identity and profiles) running beside it; how far the pipeline fell behind
   and how long it took to catch up are reported too.
2. bare-parse: an endpoint on the same uvicorn that only parses the JSON.
3. duckdb-append: the same rows appended straight into a DuckDB file, in-process,
   1,000 rows per commit: the storage engine's own rate.

With --collectors, step 1 runs once per TESSERA_COLLECTORS value, each on a fresh server,
in the order given, before the baselines: the topologies side by side in one run; the
report's "tessera" is the first of them.

Prints the table on stderr and the report as one JSON line on stdout. The load is bounded:
every batch is sent exactly once and the run stops by itself. This is a closed-loop
throughput run (each connection sends its next batch when the last is answered): its
p50/p99 are latencies at saturation, not at a given rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    LoadResult,
    Table,
    basic,
    emit,
    free_port,
    run_load,
    start_server,
    stop,
    track_message,
)


def make_batches(count: int, size: int, seed: int = 7) -> list[bytes]:
    """Bodies shaped like analytics-python's: track calls with context and properties."""
    now = datetime.now(UTC).isoformat()
    bodies = []
    for b in range(count):
        batch = []
        for i in range(size):
            n = b * size + i
            batch.append(
                track_message(
                    n,
                    user_id=f"user-{(n * 7919 + seed) % 50_000}",
                    anonymous_id=str(uuid.UUID(int=n + seed)),
                    message_id=str(uuid.UUID(int=(seed << 64) + n)),
                    timestamp=now,
                )
            )
        bodies.append(orjson.dumps({"batch": batch, "sentAt": now}))
    return bodies


def bench_tessera(
    bodies: list[bytes],
    warmup: list[bytes],
    size: int,
    connections: int,
    collectors: str | None = None,
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {} if collectors is None else {"TESSERA_COLLECTORS": collectors}
        server = start_server(Path(tmp) / "data", port, env)
        try:
            admin = {"Authorization": "Bearer bench-admin-token-0123456789"}
            created = httpx.post(
                f"http://127.0.0.1:{port}/api/sources",
                headers=admin,
                json={"name": "bench", "channel": "server"},
            ).json()
            headers = {
                "Authorization": basic(created["write_key"]),
                "Content-Type": "application/json",
            }
            result = warm_then_load(port, warmup, bodies, size, connections, headers)
            at_stop = httpx.get(f"http://127.0.0.1:{port}/api/stats", headers=admin).json()
            caught_up = wait_for_pipeline(port, admin)
            # Collectors acknowledge once their log is fsync'd: count what the core loaded
            # once it has caught up, not at the instant the load stopped.
            stored = httpx.get(f"http://127.0.0.1:{port}/api/stats", headers=admin).json()
        finally:
            stop(server)
    summary = result.summary()
    summary["stored_events"] = stored["events"]
    summary["pipeline_lag_at_end"] = at_stop["lag_events"]
    summary["pipeline_catch_up_s"] = caught_up
    summary["expected_events"] = (len(bodies) + len(warmup)) * size
    return summary


def warm_then_load(
    port: int,
    warmup: list[bytes],
    bodies: list[bytes],
    size: int,
    connections: int,
    headers: dict[str, str],
) -> LoadResult:
    """Send the warm-up batches (not measured), then the measured ones."""
    run_load(port, "/v1/batch", warmup, events_each=size, connections=connections, headers=headers)
    return run_load(
        port, "/v1/batch", bodies, events_each=size, connections=connections, headers=headers
    )


def wait_for_pipeline(port: int, admin: dict[str, str], limit: float = 300) -> float | None:
    """Seconds until identity and profiles have caught up with what was ingested."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        lag = httpx.get(f"http://127.0.0.1:{port}/api/pipeline", headers=admin).json()
        if lag["lag_events"] == 0:
            return round(time.perf_counter() - started, 1)
        time.sleep(0.2)
    return None


def bench_bare(bodies: list[bytes], warmup: list[bytes], size: int, connections: int) -> dict:
    port = free_port()
    script = Path(__file__).with_name("bare_parse_server.py")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), port, command=[sys.executable, str(script), str(port)])
        try:
            headers = {"Content-Type": "application/json"}
            result = warm_then_load(port, warmup, bodies, size, connections, headers)
        finally:
            stop(server)
    return result.summary()


def bench_duckdb(bodies: list[bytes], per_commit: int = 1000) -> dict:
    """Append the same rows, already flattened, straight into DuckDB."""
    import pyarrow as pa

    from tessera.eventlog import LOG_EVENT_SCHEMA
    from tessera.eventlog.records import batch_of
    from tessera.events.contract import Envelope, check_message
    from tessera.events.writer import _numbered
    from tessera.store import open_store

    received = int(time.time() * 1_000_000)
    envelope = Envelope("src_bench", "server", received)
    rows = [
        check_message(m, envelope, default_type=None, max_bytes=32768)
        for body in bodies
        for m in orjson.loads(body)["batch"]
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "raw.duckdb")
        started = time.perf_counter()
        for first in range(0, len(rows), per_commit):
            chunk = rows[first : first + per_commit]
            with store.transaction():
                table = pa.Table.from_batches([batch_of(chunk, LOG_EVENT_SCHEMA)])
                store.insert_arrow("events", _numbered(table, "seq", first + 1))
        seconds = time.perf_counter() - started
        store.close()
    return {
        "events_per_s": round(len(rows) / seconds),
        "rows": len(rows),
        "rows_per_commit": per_commit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--collectors",
        default="",
        help="TESSERA_COLLECTORS values to compare, comma-separated (default: the server's own)",
    )
    args = parser.parse_args()
    topologies = [c.strip() for c in args.collectors.split(",") if c.strip()] or [None]

    bodies = make_batches(args.batches, args.batch_size)
    warmup = make_batches(100, args.batch_size, seed=99)
    by_topology = {}
    for collectors in topologies:
        run = bench_tessera(bodies, warmup, args.batch_size, args.connections, collectors)
        by_topology[collectors or "default"] = run
        print(f"collectors {collectors or 'default'}: {run}", file=sys.stderr, flush=True)
    tessera = next(iter(by_topology.values()))
    bare = bench_bare(bodies, warmup, args.batch_size, args.connections)
    raw = bench_duckdb(bodies)
    report = {
        "batches": args.batches,
        "batch_size": args.batch_size,
        "connections": args.connections,
        "body_bytes_mean": round(sum(map(len, bodies)) / len(bodies)),
        "tessera": tessera,
        "tessera_by_collectors": by_topology,
        "bare_parse": bare,
        "duckdb_append": raw,
        "ratio_to_bare_parse": round(tessera["events_per_s"] / bare["events_per_s"], 3),
        "ratio_to_duckdb_append": round(tessera["events_per_s"] / raw["events_per_s"], 3),
    }
    table = Table(
        f"ingest: {args.batches} x {args.batch_size}-event batches, {args.connections} connections",
        ["run", "events/s", "p50 ms", "p99 ms", "ratio"],
    )
    for collectors, run in by_topology.items():
        ratio = run["events_per_s"] / bare["events_per_s"]
        table.add(f"Tessera `/v1/batch`, durable, pipeline running, collectors {collectors}",
                  run["events_per_s"], run["p50_ms"], run["p99_ms"],
                  f"{ratio:.2f} of bare parse")  # fmt: skip
    table.add("bare parse endpoint, same uvicorn, one process (baseline)", bare["events_per_s"],
              bare["p50_ms"], bare["p99_ms"], "1.00")  # fmt: skip
    table.add("raw DuckDB append, same rows, in-process (baseline)", raw["events_per_s"], "", "",
              f"{report['ratio_to_duckdb_append']:.2f} of it")  # fmt: skip
    notes = [
        f"pipeline (identity + profiles, running beside ingest), collectors {collectors}: "
        f"{run['pipeline_lag_at_end']:,} events behind when the load stopped, "
        f"caught up {run['pipeline_catch_up_s']} s later"
        for collectors, run in by_topology.items()
    ]
    emit(report, table, notes=notes)
    for collectors, run in by_topology.items():
        if run["stored_events"] != run["expected_events"]:
            print(
                f"MISMATCH (collectors {collectors}): stored {run['stored_events']} != "
                f"sent {run['expected_events']}",
                file=sys.stderr,
            )
            sys.exit(1)


if __name__ == "__main__":
    main()
