"""The collect path's per-message cost without HTTP or the writer: decode a body and check
each message, as `/v1/batch` does before anything is queued.

    .venv/bin/python benchmarks/contract_check.py [--batches 300] [--runs 3]
    .venv/bin/python benchmarks/contract_check.py --against OTHER_CHECKOUT [--runs 7]

Uses the ingest benchmark's bodies (100 analytics-python-shaped track calls each).
`--against` sets this checkout beside another one (a folder holding a `tessera` package,
e.g. `git archive e16e550 tessera | tar -x -C /tmp/old`) in one sitting: each run is a
fresh process, alternating A, B, A, B, so that a machine shared with other work slows both
sides alike. Prints a table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import make_batches

import tessera
from tessera.events.body import decode_body
from tessera.events.contract import Envelope, check_message
from tessera.events.timestamps import now_micros


def measure(batches: int, runs: int) -> tuple[list[float], list[float]]:
    """Messages per second of decode + check, once per run: per second of wall time, and
    per second of this process's CPU time (what a machine shared with other work
    disturbs least)."""
    bodies = make_batches(batches, 100)
    envelope = Envelope("src", "web", now_micros())
    wall, cpu = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        for body in bodies:
            for message in decode_body(body, None, 4 << 20)["batch"]:
                check_message(message, envelope, default_type=None, max_bytes=32_768)
        wall.append(batches * 100 / (time.perf_counter() - started))
        cpu.append(batches * 100 / (time.process_time() - cpu_started))
    return wall, cpu


def one_run_in(checkout: Path, batches: int) -> float:
    """Messages per CPU-second of one run in a fresh interpreter importing `tessera`
    from `checkout`."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, __file__, "--batches", str(batches), "--runs", "1"]
    done = subprocess.run(command, env=env, capture_output=True, check=True, text=True)
    return float(json.loads(done.stdout)["messages_per_cpu_s_median"])


def side_by_side(other: Path, batches: int, runs: int) -> dict[str, object]:
    here = Path(tessera.__file__).resolve().parent.parent
    rates: dict[Path, list[float]] = {here: [], other: []}
    for _ in range(runs):
        for checkout in rates:
            rates[checkout].append(one_run_in(checkout, batches))
    print("| tessera | messages per CPU-s (median) | max | runs |", file=sys.stderr)
    print("| --- | --- | --- | --- |", file=sys.stderr)
    for checkout, found in rates.items():
        print(
            f"| {checkout} | {statistics.median(found):,.0f} | {max(found):,.0f} | {runs} |",
            file=sys.stderr,
        )
    ratio = statistics.median(rates[here]) / statistics.median(rates[other])
    print(f"this checkout / the other: {ratio:.3f}", file=sys.stderr)
    return {
        "benchmark": "contract_check",
        "messages": batches * 100,
        "runs": runs,
        "interleaved": True,
        **{
            side: {"tessera": str(checkout), "messages_per_cpu_s": [round(r) for r in found]}
            for side, (checkout, found) in zip(("a", "b"), rates.items(), strict=True)
        },
        "ratio_a_to_b": round(ratio, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, run alternately")
    args = parser.parse_args()
    if args.against is not None:
        print(json.dumps(side_by_side(args.against.resolve(), args.batches, args.runs)))
        return
    wall, cpu = measure(args.batches, args.runs)
    result = {
        "benchmark": "contract_check",
        "tessera": str(Path(tessera.__file__).parent),
        "messages": args.batches * 100,
        "runs": args.runs,
        "messages_per_s_median": round(statistics.median(wall)),
        "messages_per_s_max": round(max(wall)),
        "messages_per_cpu_s_median": round(statistics.median(cpu)),
    }
    print("| tessera | messages/s (median) | max | per CPU-s (median) |", file=sys.stderr)
    print("| --- | --- | --- | --- |", file=sys.stderr)
    print(
        f"| {result['tessera']} | {result['messages_per_s_median']:,} "
        f"| {result['messages_per_s_max']:,} | {result['messages_per_cpu_s_median']:,} |",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
