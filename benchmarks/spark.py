"""Spark benchmark: a DuckDB rebuild beside `tessera spark run --master local[2]`.

    python benchmarks/spark.py [--events 1000000 10000000 50000000] [--people 2000]
        [--conf spark.driver.memory=10g --conf spark.sql.shuffle.partitions=16]

For each size: the demo company (`--people`) scaled up to the size as benchmarks/pipeline.py
does (copies of the log with every identifier suffixed per copy, so each copy is new
people); then, each in its own process,
1. DuckDB: `tessera rebuild` (identity, summaries, computed traits, segments);
2. the export: `tessera log export` (Parquet by day and source);
3. Spark: `tessera spark run --master local[2]` over the export (identity, summaries,
   computed traits, segments: the same work), JVM start included.
Time is wall-clock; peak memory is the largest sum of the resident sizes of the process and
all its descendants (the JVM and Python workers for Spark), sampled every 0.2 s.

Prints the table on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit
from pipeline import load_demo, scale_up

from tessera.runtime import Runtime
from tessera.settings import Settings

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and every process below it (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry.name)] = int(fields[1])
        rss[int(entry.name)] = pages * _PAGE
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += [child for child, parent in parents.items() if parent == pid]
    return total


def measured(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak tree RSS in bytes, stdout) of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode})")
    return seconds, peak, out.decode()


def _steps(answer: str) -> object:
    """The Spark run's seconds per step from its JSON answer (indented, from its first
    `{`); None when the answer is not that JSON: an hour's figures are not lost to a
    stray line."""
    start = answer.find("{")
    try:
        return orjson.loads(answer[start:]).get("steps") if start >= 0 else None
    except (orjson.JSONDecodeError, AttributeError):
        return None


def prepare(base: Path, work: Path, events: int) -> Path:
    """A data directory holding about `events` events."""
    runtime = Runtime.open(Settings(data_dir=base, admin_token="bench"))
    try:
        row = runtime.store.fetch_one("SELECT count(*) FROM events")
        per_copy = int(row[0]) if row else 1
    finally:
        runtime.close()
    target = work / f"data-{events}"
    copies = max(1, round(events / per_copy))
    if copies == 1:
        shutil.copytree(base, target)
    else:
        scale_up(base, target, copies)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE",
        help="a Spark setting for the run (10M events: spark.driver.memory=10g and "
        "spark.sql.shuffle.partitions=16); repeatable",
    )  # fmt: skip
    arguments = parser.parse_args()
    tessera = [sys.executable, "-m", "tessera.cli"]
    table = Table(
        "DuckDB rebuild vs Spark (same log, same work)",
        ["events", "engine", "seconds", "peak memory (MiB)", "events/s"],
    )
    report: dict[str, object] = {"master": arguments.master, "people": arguments.people,
                                 "sizes": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tessera-spark-bench-") as folder:
        work = Path(folder)
        base = work / "demo"
        load_demo(base, arguments.people)
        for size in arguments.events:
            data = prepare(base, work, size)
            env = {**os.environ, "TESSERA_DATA_DIR": str(data), "TESSERA_ADMIN_TOKEN": "bench"}
            rows = Runtime.open(Settings(data_dir=data, admin_token="bench"))
            try:
                count = int(rows.store.fetch_one("SELECT count(*) FROM events")[0])  # type: ignore[index]
            finally:
                rows.close()
            lake, out = work / f"lake-{size}", work / f"out-{size}"
            commands = {
                "duckdb rebuild": ["rebuild", "--json"],
                "log export": ["log", "export", "--to", str(lake), "--json"],
                f"spark {arguments.master}": [
                    "spark", "run", "--master", arguments.master, "--input", str(lake),
                    "--output", str(out), "--now", "2026-12-01T00:00:00", "--json",
                    *(f"--conf={setting}" for setting in arguments.conf),
                ],
            }  # fmt: skip
            figures: dict[str, object] = {}
            for engine, command in commands.items():
                seconds, peak, answer = measured([*tessera, *command], env)
                table.add(count, engine, round(seconds, 1), round(peak / 2**20),
                          round(count / seconds))  # fmt: skip
                entry: dict[str, object] = {"seconds": round(seconds, 2), "peak_bytes": peak}
                if command[0] == "spark":  # the run's own clock, step by step
                    entry["steps"] = _steps(answer)
                figures[engine] = entry
                # As it goes: a larger size may not finish on a busy machine.
                steps = f" {entry['steps']}" if entry.get("steps") else ""
                print(f"{count} events, {engine}: {seconds:.1f} s, peak "
                      f"{peak / 2**20:.0f} MiB{steps}", file=sys.stderr, flush=True)  # fmt: skip
            report["sizes"][str(count)] = figures  # type: ignore[index]
            shutil.rmtree(lake, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)
    emit(report, table, notes=["Peak memory: the process and its descendants, summed."])


if __name__ == "__main__":
    main()
