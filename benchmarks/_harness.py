"""Shared pieces for benchmarks: a free port, a server subprocess, two tiny HTTP load
generators (closed-loop throughput, open-loop latency) and the house output format.

The load generators speak HTTP/1.1 keep-alive over raw asyncio streams: an HTTP client
library would spend more CPU than the server under test on these 2-core machines.

Output: every benchmark prints its tables (markdown, on stderr, ready for the README) and
its whole report as one JSON line on stdout, so `benchmarks/x.py > x.json` keeps the
figures and the terminal still shows the tables.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        # Reaped, so its files (the DuckDB lock) are released before the caller goes on.
        process.wait()


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


@dataclass
class LoadResult:
    """A closed-loop throughput run: each connection sends its next request when the last
    is answered, so the latencies are service times at saturation, not latencies at a
    given rate (for those, `run_open_loop`)."""

    requests: int
    events: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict[str, float | int]:
        return {
            "events_per_s": round(self.events_per_second),
            "requests": self.requests,
            "p50_ms": round(self.percentile(0.50), 2),
            "p99_ms": round(self.percentile(0.99), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else 0,
            "non_200": sum(v for k, v in self.statuses.items() if k != 200),
        }


EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Checkout Started", "Email Opened"]


def track_message(
    n: int, *, user_id: str, anonymous_id: str, message_id: str, timestamp: str
) -> dict[str, Any]:
    """The n-th track call of a load, shaped like analytics-python's (context, properties)."""
    return {
        "type": "track",
        "event": EVENTS[n % len(EVENTS)],
        "userId": user_id,
        "anonymousId": anonymous_id,
        "messageId": message_id,
        "timestamp": timestamp,
        "properties": {
            "product_id": f"sku-{n % 997}",
            "price": 19.99 + n % 50,
            "currency": "EUR",
            "quantity": 1 + n % 3,
            "category": "shoes",
        },
        "context": {
            "library": {"name": "analytics-python", "version": "2.3.0"},
            "ip": "203.0.113.9",
            "locale": "fr-FR",
        },
        "integrations": {},
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


# -- open loop: latency at a fixed offered rate, without coordinated omission ------------


@dataclass
class OpenLoopResult:
    """A fixed-rate run. `latencies_ms` run from each request's *scheduled* send time to
    its answer, so time a request spent waiting for a free connection (because the server
    was slow with the one before) counts against the server; `service_ms` run from the
    actual send, as a closed-loop client would report them (shown beside, never instead)."""

    offered_rate: float
    scheduled: int = 0
    completed: int = 0
    #: scheduled requests still unanswered when the drain time ran out
    unanswered: int = 0
    #: first scheduled send to last answer (or to the end of the drain)
    seconds: float = 0.0
    last_answer_at: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)
    #: each answered request's scheduled send, in seconds from the first (beside latencies_ms)
    scheduled_s: list[float] = field(default_factory=list)
    started_at: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "offered_per_s": round(self.offered_rate, 1),
            "achieved_per_s": round(self.achieved_rate, 1),
            "scheduled": self.scheduled,
            "completed": self.completed,
            "unanswered": self.unanswered,
            "p50_ms": round(percentile(self.latencies_ms, 0.50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
            "max_ms": round(max(self.latencies_ms, default=0.0), 2),
            "service_p50_ms": round(percentile(self.service_ms, 0.50), 2),
            "service_p99_ms": round(percentile(self.service_ms, 0.99), 2),
            "non_200": sum(v for k, v in self.statuses.items() if k != 200),
            "p99_ms_by_10s": self.p99_by_window(10.0),
        }

    def p99_by_window(self, window_s: float) -> list[float]:
        """p99 of the requests scheduled in each `window_s` of the run, in order: tells a
        transient (one bad window) from a steady slowness (all of them)."""
        windows: dict[int, list[float]] = {}
        for at, latency in zip(self.scheduled_s, self.latencies_ms, strict=True):
            windows.setdefault(int(at // window_s), []).append(latency)
        return [round(percentile(windows[k], 0.99), 1) for k in sorted(windows)]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """One whole answer's status, 0 when the server closed the connection instead."""
    try:
        return await read_response(reader)
    except (IndexError, ValueError, asyncio.IncompleteReadError):
        return 0


async def _open_loop_worker(
    port: int,
    headers: str,
    queue: asyncio.Queue[tuple[int, str, float] | None],
    waiting: dict[int, float],
    result: OpenLoopResult,
) -> None:
    """One keep-alive connection taking scheduled requests from the queue as it frees up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (item := await queue.get()) is not None:
            number, path, scheduled_at = item
            sent_at = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
            await writer.drain()
            status = await _read_answer(reader)
            answered_at = time.perf_counter()
            del waiting[number]
            result.latencies_ms.append(1000 * (answered_at - scheduled_at))
            result.service_ms.append(1000 * (answered_at - sent_at))
            result.scheduled_s.append(scheduled_at - result.started_at)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.completed += 1
            result.last_answer_at = answered_at
            if status == 0:  # closed by the server: the next request needs a new connection
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def run_open_loop(
    port: int,
    paths: list[str],
    *,
    rate: float,
    seconds: float,
    connections: int,
    headers: dict[str, str],
    drain_seconds: float | None = None,
) -> OpenLoopResult:
    """GET `paths` round-robin on a fixed schedule, request k at start + k / rate, for
    `seconds`, whatever the answers do (open loop, as wrk2 does). A request waits in a
    queue until one of `connections` keep-alive connections is free, and its latency runs
    from its scheduled time: a closed loop, which sends the next request only after the
    last answer, stops offering load exactly while the server is slow and so hides that
    slowness (coordinated omission, Gil Tene). After the schedule, answers are awaited
    for `drain_seconds` (default: `seconds`); requests still waiting then are counted as
    unanswered and their latency so far is recorded (a lower bound), so a saturated
    server cannot flatter its p99 by leaving requests unanswered."""
    header_text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    result = OpenLoopResult(offered_rate=rate)
    drain = seconds if drain_seconds is None else drain_seconds
    total = max(1, int(rate * seconds))

    async def main() -> None:
        queue: asyncio.Queue[tuple[int, str, float] | None] = asyncio.Queue()
        waiting: dict[int, float] = {}  # scheduled and not answered yet: number -> time
        workers = [
            asyncio.create_task(_open_loop_worker(port, header_text, queue, waiting, result))
            for _ in range(connections)
        ]
        await asyncio.sleep(0.1)  # the connections open before the clock starts
        start = result.started_at = time.perf_counter()
        for number in range(total):
            scheduled_at = start + number / rate
            delay = scheduled_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # A late scheduler (the event loop busy) still stamps the planned time, so
            # the generator's own delays count against the figure, never for it.
            waiting[number] = scheduled_at
            queue.put_nowait((number, paths[number % len(paths)], scheduled_at))
        result.scheduled = total
        for _ in workers:
            queue.put_nowait(None)
        _, stuck = await asyncio.wait(workers, timeout=drain)
        end = result.last_answer_at
        if stuck:
            end = time.perf_counter()
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
            result.unanswered = len(waiting)
            result.latencies_ms.extend(1000 * (end - at) for at in waiting.values())
            result.scheduled_s.extend(at - start for at in waiting.values())
        result.seconds = max(end - start, 1e-9)

    asyncio.run(main())
    return result


# -- output -------------------------------------------------------------------------------


@dataclass
class Table:
    """A result table: printed as markdown, the format the README's figures use."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *values: Any) -> None:
        self.rows.append(list(values))

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "| " + " | ".join("---" for _ in self.columns) + " |"]  # fmt: skip
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit(report: dict[str, Any], *tables: Table, notes: Sequence[str] = ()) -> None:
    """The house format: the tables (and notes) on stderr, the report as one JSON line on
    stdout."""
    for table in tables:
        print(table.markdown() + "\n", file=sys.stderr)
    for note in notes:
        print(note, file=sys.stderr)
    sys.stderr.flush()
    print(json.dumps(report, default=str, separators=(",", ":")), flush=True)
