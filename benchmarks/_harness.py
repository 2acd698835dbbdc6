"""Shared pieces for benchmarks: a free port, a server subprocess, a tiny HTTP load generator.

The load generator speaks HTTP/1.1 keep-alive over raw asyncio streams: an HTTP client
library would spend more CPU than the server under test on these 2-core machines.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path,
    port: int,
    extra_env: dict[str, str] | None = None,
    command: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TESSERA_DATA_DIR": str(data_dir),
        "TESSERA_PORT": str(port),
        "TESSERA_ADMIN_TOKEN": "bench-admin-token-0123456789",
        **(extra_env or {}),
    }
    cmd = list(command or [sys.executable, "-m", "tessera.cli", "serve"])
    log_path = data_dir.parent / f"server-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 (lives with it)
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    wait_for(f"http://127.0.0.1:{port}/api/health", process, log_path)
    return process


def wait_for(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            # stderr goes to a file (a pipe nobody reads can fill and block the server)
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"server exited with {process.returncode}; {log_path}:\n{tail}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


@dataclass
class LoadResult:
    requests: int
    events: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float | int]:
        return {
            "events_per_s": round(self.events_per_second),
            "requests": self.requests,
            "p50_ms": round(self.percentile(0.50), 2),
            "p99_ms": round(self.percentile(0.99), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else 0,
            "non_200": sum(v for k, v in self.statuses.items() if k != 200),
        }


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one whole HTTP/1.1 answer (status line, headers, Content-Length body); its status.

    Raises:
        asyncio.IncompleteReadError: the connection closed mid-answer.
        IndexError, ValueError: the status line is not HTTP (e.g. the connection closed).
    """
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, result: LoadResult
) -> int:
    """Send one request on a keep-alive connection, read the whole answer, record it."""
    started = time.perf_counter()
    writer.write(request)
    await writer.drain()
    status = await read_response(reader)
    result.latencies_ms.append(1000 * (time.perf_counter() - started))
    result.statuses[status] = result.statuses.get(status, 0) + 1
    result.requests += 1
    return status


async def _worker(
    port: int, path: str, headers: str, bodies: list[bytes], events_each: int, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body in bodies:
            request = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            status = await _exchange(reader, writer, request, result)
            if status == 200:
                result.events += events_each
    finally:
        writer.close()


def run_load(
    port: int,
    path: str,
    bodies: list[bytes],
    *,
    events_each: int,
    connections: int,
    headers: dict[str, str],
) -> LoadResult:
    """Send every body once over `connections` keep-alive connections; bounded by len(bodies)."""
    header_text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    result = LoadResult(0, 0, 0.0, [], {})
    shares = [bodies[i::connections] for i in range(connections)]

    async def main() -> None:
        await asyncio.gather(
            *(_worker(port, path, header_text, share, events_each, result) for share in shares)
        )

    started = time.perf_counter()
    asyncio.run(main())
    result.seconds = time.perf_counter() - started
    return result


async def _paced_worker(
    port: int, paths: list[str], headers: str, interval: float, deadline: float, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    index = 0
    try:
        while loop.time() < deadline:
            path = paths[index % len(paths)]
            index += 1
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
            await _exchange(reader, writer, request, result)
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        writer.close()


def run_paced(
    port: int,
    paths: list[str],
    *,
    rate: float,
    seconds: float,
    connections: int,
    headers: dict[str, str],
) -> LoadResult:
    """GET `paths` round-robin at a fixed total rate for `seconds` (open-loop per
    connection: a slow answer delays only its own connection's next request)."""
    header_text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    result = LoadResult(0, 0, 0.0, [], {})
    interval = connections / rate

    async def main() -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        await asyncio.gather(
            *(
                _paced_worker(
                    port, paths[i::connections] or paths, header_text, interval, deadline, result
                )
                for i in range(connections)
            )
        )

    started = time.perf_counter()
    asyncio.run(main())
    result.seconds = time.perf_counter() - started
    return result
