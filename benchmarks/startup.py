"""Start-up benchmark: what a process pays before it does anything.

    python benchmarks/startup.py [--repeat 5] [--tree OTHER_CHECKOUT ...]

Three figures, each the median of `--repeat` fresh processes:
- `import tessera.cli`: what every CLI command pays first;
- `tessera --help`: the whole command tree built and printed;
- server ready: `tessera serve` (two collectors, a fresh data directory) from the command
  to the first 200 from /api/health through a collector; each collector is a spawned
  interpreter that imports tessera.cli again before its own code.

`--tree` times another checkout beside this one (its package first on PYTHONPATH, with
this virtualenv): `git archive COMMIT | tar -x -C /tmp/before` and `--tree /tmp/before`
compare a change on one machine, runs interleaved so both see the same load. Prints the
table on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit, free_port, stop

HERE = Path(__file__).resolve().parents[1]
TOKEN = "bench-admin-token-0123456789"


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=env["PYTHONPATH"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _server_ready(env: dict[str, str], timeout: float = 300) -> float:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        data = Path(folder) / "data"
        server_env = {**env, "TESSERA_DATA_DIR": str(data), "TESSERA_PORT": str(port),
                      "TESSERA_ADMIN_TOKEN": TOKEN}  # fmt: skip
        started = time.perf_counter()
        with (Path(folder) / "server.log").open("wb") as log:
            command = [sys.executable, "-m", "tessera.cli", "serve"]
            process = subprocess.Popen(
                command,
                env=server_env,
                cwd=env["PYTHONPATH"],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited with {process.returncode}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"the server was not ready in {timeout} s")
                time.sleep(0.05)
        finally:
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[], help="another checkout")
    args = parser.parse_args()
    trees = {"this": HERE, **{str(path): Path(path) for path in args.tree}}
    measures = {
        "import tessera.cli": lambda env: _timed([sys.executable, "-c", "import tessera.cli"], env),
        "tessera --help": lambda env: _timed([sys.executable, "-m", "tessera.cli", "--help"], env),
        "server ready": _server_ready,
    }
    for tree, path in trees.items():  # each tree really runs its own package
        where = subprocess.run(
            [sys.executable, "-c", "import tessera; print(tessera.__file__)"],
            env={**os.environ, "PYTHONPATH": str(path)}, cwd=path, check=True,
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if not Path(where).is_relative_to(path.resolve()):
            raise SystemExit(f"{tree}: tessera comes from {where}, not from {path}")
    seconds: dict[tuple[str, str], list[float]] = {(t, m): [] for t in trees for m in measures}
    for _ in range(args.repeat):
        for tree, path in trees.items():  # interleaved: each tree sees the same load
            # The tree first on the path; and its folder the working directory, which
            # `-c` and `-m` put before PYTHONPATH.
            env = {**os.environ, "PYTHONPATH": str(path)}
            for measure, run in measures.items():
                seconds[(tree, measure)].append(run(env))
    table = Table(
        f"Start-up, median of {args.repeat} (load average {os.getloadavg()[0]:.1f})",
        ["tree", *measures],
    )
    report: dict[str, dict[str, float]] = {}
    for tree in trees:
        medians = {m: round(statistics.median(seconds[(tree, m)]), 2) for m in measures}
        report[tree] = medians
        table.add(tree, *(f"{medians[m]:.2f} s" for m in measures))
    emit({"benchmark": "startup", "seconds": report}, table)


if __name__ == "__main__":
    main()
