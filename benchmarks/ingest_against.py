"""Ingest through /v1/batch for two checkouts side by side, alternating, in one sitting.

    .venv/bin/python benchmarks/ingest_against.py --against OTHER_CHECKOUT [--batches 2000]
        [--rounds 3] [--connections 32]

OTHER_CHECKOUT is a folder holding a `tessera` package (e.g. `git archive e16e550 tessera |
tar -x -C /tmp/old`); it runs with this checkout's virtual environment. Each round starts a
fresh `tessera serve` from this checkout, then from the other, then the bare-parse
endpoint (benchmarks/bare_parse_server.py), and sends each the same 100-event batches as
benchmarks/ingest.py (closed loop, every batch once, 200 only after COMMIT, pipeline
running). On a machine shared with other work the wall-clock rate moves with the
neighbours, so the server's own CPU time (user + system, from /proc) is read too:
events per CPU-second is the steadier figure for what a request costs. Prints a table on
stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, basic, emit, free_port, run_load, start_server, stop
from ingest import make_batches

HERE = Path(__file__).resolve().parent.parent
ADMIN = {"Authorization": "Bearer bench-admin-token-0123456789"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_server(
    checkout: Path | None, bodies: list[bytes], warmup: list[bytes], connections: int
) -> dict[str, float]:
    """Events/s (wall and per server CPU-second) of one fresh server; None: bare parse."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        if checkout is None:
            script = Path(__file__).with_name("bare_parse_server.py")
            server = start_server(Path(tmp), port, command=[sys.executable, str(script), str(port)])
            headers = {"Content-Type": "application/json"}
        else:
            # -P: nothing ahead of PYTHONPATH, so `tessera` comes from `checkout`.
            command = [sys.executable, "-P", "-m", "tessera.cli", "serve"]
            server = start_server(
                Path(tmp), port, extra_env={"PYTHONPATH": str(checkout)}, command=command
            )
        try:
            if checkout is not None:
                created = httpx.post(
                    f"http://127.0.0.1:{port}/api/sources",
                    headers=ADMIN,
                    json={"name": "bench", "channel": "server"},
                ).json()
                headers = {
                    "Authorization": basic(created["write_key"]),
                    "Content-Type": "application/json",
                }
            run_load(port, "/v1/batch", warmup, events_each=100, connections=connections,
                     headers=headers)  # fmt: skip
            cpu_before = cpu_seconds(server.pid)
            result = run_load(port, "/v1/batch", bodies, events_each=100,
                              connections=connections, headers=headers)  # fmt: skip
            cpu = cpu_seconds(server.pid) - cpu_before
        finally:
            stop(server)
    events = len(bodies) * 100
    if result.summary()["non_200"]:
        raise SystemExit(f"{checkout}: {result.summary()['non_200']} answers were not 200")
    return {"events_per_s": events / result.seconds, "events_per_cpu_s": events / cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    other = args.against.resolve()
    bodies = make_batches(args.batches, 100)
    warmup = make_batches(100, 100, seed=99)
    sides: dict[str, Path | None] = {"this": HERE, "other": other, "bare_parse": None}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, checkout in sides.items():
            runs[name].append(one_server(checkout, bodies, warmup, args.connections))
    report: dict[str, Any] = {
        "benchmark": "ingest_against",
        "batches": args.batches,
        "rounds": args.rounds,
        "connections": args.connections,
    }
    table = Table(
        f"ingest side by side: {args.batches} x 100-event batches, {args.connections} "
        f"connections, {args.rounds} alternating rounds (medians)",
        ["server", "events/s", "events per server CPU-s", "of bare parse (events/s)"],
    )
    bare = statistics.median(r["events_per_s"] for r in runs["bare_parse"])
    for name, checkout in sides.items():
        wall = statistics.median(r["events_per_s"] for r in runs[name])
        cpu = statistics.median(r["events_per_cpu_s"] for r in runs[name])
        report[name] = {
            "tessera": str(checkout) if checkout else "bare_parse_server.py",
            "events_per_s": [round(r["events_per_s"]) for r in runs[name]],
            "events_per_cpu_s": [round(r["events_per_cpu_s"]) for r in runs[name]],
            "ratio_to_bare_parse": round(wall / bare, 3),
        }
        table.add(report[name]["tessera"], f"{wall:,.0f}", f"{cpu:,.0f}", f"{wall / bare:.2f}")
    emit(report, table)


if __name__ == "__main__":
    main()
