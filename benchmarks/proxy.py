"""What the collectors' proxy costs the admin API: the same requests through the public port
(a collector passes them to the core) and straight to the core's socket, interleaved.

    python benchmarks/proxy.py [--requests 400] [--collectors 2]

One real `tessera serve` with collectors; each path is asked `--requests` times each way,
one request at a time, alternating, so both see the same machine. Prints the table on
stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit, free_port, percentile, start_server, stop

ADMIN = {"Authorization": "Bearer bench-admin-token-0123456789"}
PATHS = ["/api/health", "/api/sources", "/openapi.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--collectors", type=int, default=2)
    args = parser.parse_args()
    report: dict[str, object] = {"requests": args.requests, "collectors": args.collectors}
    table = Table(
        f"the proxy: {args.requests} sequential requests per path and way, interleaved",
        ["path", "through a collector p50 / p99 ms", "core socket p50 / p99 ms"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {"TESSERA_COLLECTORS": str(args.collectors)}
        server = start_server(Path(tmp) / "data", port, env)
        socket_path = str((Path(tmp) / "data" / "run" / "core.sock").resolve())
        try:
            public = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=ADMIN)
            direct = httpx.Client(
                base_url="http://core",
                headers=ADMIN,
                transport=httpx.HTTPTransport(uds=socket_path),
            )
            for path in PATHS:
                ways: dict[str, list[float]] = {"proxy": [], "direct": []}
                for _ in range(args.requests):
                    for way, client in (("proxy", public), ("direct", direct)):
                        started = time.perf_counter()
                        client.get(path).raise_for_status()
                        ways[way].append(1000 * (time.perf_counter() - started))
                summary = {
                    way: {
                        "p50_ms": round(percentile(times, 0.5), 2),
                        "p99_ms": round(percentile(times, 0.99), 2),
                    }
                    for way, times in ways.items()
                }
                report[path] = summary
                table.add(
                    path,
                    f"{summary['proxy']['p50_ms']} / {summary['proxy']['p99_ms']}",
                    f"{summary['direct']['p50_ms']} / {summary['direct']['p99_ms']}",
                )
        finally:
            stop(server)
    report["machine_load_1m"] = round(os.getloadavg()[0], 2)
    emit(report, table, notes=[f"load average at the end: {report['machine_load_1m']}"])


if __name__ == "__main__":
    main()
