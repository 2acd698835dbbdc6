"""Freshness under load: how soon a new person is visible while events keep arriving.

    python benchmarks/freshness.py [--rates 100,1000,5000,20000] [--seconds 60] [--json]

For each offered rate, on one real `tessera serve` (a fresh data directory, one source):

1. load: 100-event batches to /v1/batch, OPEN LOOP. Batch i is due at t0 + i * interval
   whatever happened to the batches before it; several sender processes share the schedule
   and each keeps as many keep-alive connections as it needs (a send that finds no idle
   connection opens one), so a slow server does not slow the offer down. A batch's latency
   is measured from its SCHEDULED send time, so queueing in the generator counts against
   the server, never hides it (no coordinated omission). 200s, 429s and other failures
   are counted; nothing is retried.
2. probes: every 0.5 s one `identify` with a new e-mail, then `GET /api/profiles/email:...`
   polled until it answers 200. Freshness = that answer's time - the identify's scheduled
   send. A probe still unanswered 30 s after its schedule counts as "> 30 s".
3. lag: `GET /api/pipeline` lag_events every second during the load; after the load
   stops, the time until lag_events is 0 again (capped at 60 s).

Prints one JSON line per rate (on stdout) and a table, then the maximum sustainable rate
among those run: every batch acked and freshness p99 <= 1 s. The CPU the generator
(senders + probes) and the server used is reported, so a saturated generator shows.
Rates run in the order given on the same server: the log grows from one rate to the next,
as it would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import basic, free_port, read_response, start_server, stop

BATCH_SIZE = 100
PROBE_EVERY_S = 0.5
PROBE_POLL_S = 0.05
PROBE_GIVE_UP_S = 30.0
LAG_EVERY_S = 1.0
DRAIN_CAP_S = 60.0
FRESH_P99_S = 1.0
ADMIN = {"Authorization": "Bearer bench-admin-token-0123456789"}
EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Checkout Started", "Email Opened"]


# ---------------------------------------------------------------- the load (sender processes)


@dataclass(frozen=True)
class SenderPlan:
    """One sender's share of the schedule: batches index, index + stride, ... until `end`."""

    port: int
    authorization: str
    t0: float  # time.monotonic() of batch 0 (CLOCK_MONOTONIC is shared by all processes)
    interval: float  # seconds between two batches of the whole schedule
    batches: int  # batches in the whole schedule
    first: int
    stride: int
    run_tag: str
    max_connections: int


@dataclass
class SenderResult:
    acked: int = 0
    throttled: int = 0  # 429
    failed: int = 0  # any other status, or a broken connection
    latencies_s: list[float] = field(default_factory=list)  # from the scheduled send, acked only
    late_starts: int = 0  # sends that left > 10 ms after their schedule (generator lag)
    cpu_s: float = 0.0
    connections: int = 0


def batch_body(run_tag: str, index: int, sent_at: str) -> bytes:
    """A 100-event batch shaped like analytics-python's, with messageIds unique per run."""
    batch = []
    for i in range(BATCH_SIZE):
        n = index * BATCH_SIZE + i
        batch.append(
            {
                "type": "track",
                "event": EVENTS[n % len(EVENTS)],
                "userId": f"user-{(n * 7919) % 50_000}",
                "anonymousId": f"anon-{n % 200_000}",
                "messageId": f"{run_tag}-{n}",
                "timestamp": sent_at,
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
        )
    return orjson.dumps({"batch": batch, "sentAt": sent_at})


def post_request(path: str, headers: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def run_sender(plan: SenderPlan) -> SenderResult:
    """Entry point of one sender process."""
    cpu_before = time.process_time()
    result = asyncio.run(_send_schedule(plan))
    result.cpu_s = time.process_time() - cpu_before
    return result


async def _send_schedule(plan: SenderPlan) -> SenderResult:
    result = SenderResult()
    headers = f"Authorization: {plan.authorization}\r\nContent-Type: application/json\r\n"
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    slots = asyncio.Semaphore(plan.max_connections)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(index: int, due: float) -> None:
        async with slots:
            body = batch_body(plan.run_tag, index, datetime.now(UTC).isoformat())
            if time.monotonic() - due > 0.010:
                result.late_starts += 1
            try:
                if idle:
                    reader, writer = idle.pop()
                else:
                    reader, writer = await asyncio.open_connection("127.0.0.1", plan.port)
                    result.connections += 1
                writer.write(post_request("/v1/batch", headers, body))
                await writer.drain()
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                result.failed += 1
                return
            idle.append((reader, writer))
            if status == 200:
                result.acked += 1
                result.latencies_s.append(time.monotonic() - due)
            elif status == 429:
                result.throttled += 1
            else:
                result.failed += 1

    for index in range(plan.first, plan.batches, plan.stride):
        due = plan.t0 + index * plan.interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(index, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
    for _, writer in idle:
        writer.close()
    return result


# ---------------------------------------------------------------- probes and lag (main process)


@dataclass
class Observations:
    freshness_s: list[float] = field(default_factory=list)
    probes: int = 0
    timed_out: int = 0
    lag_samples: list[int] = field(default_factory=list)
    drain_s: float | None = None
    lag_at_stop: int = 0


async def probe(client: httpx.AsyncClient, auth: str, email: str, due: float, obs: Observations) -> None:
    """Identify a new person at `due`, then poll their 360° view until it answers."""
    now = time.monotonic()
    if due > now:
        await asyncio.sleep(due - now)
    message = {
        "type": "identify",
        "anonymousId": f"probe-{uuid.uuid4()}",
        "messageId": str(uuid.uuid4()),
        "traits": {"email": email},
        "timestamp": datetime.now(UTC).isoformat(),
    }
    give_up = due + PROBE_GIVE_UP_S
    obs.probes += 1
    try:
        while time.monotonic() < give_up:  # an identify refused with 429 is tried again
            sent = await client.post("/v1/identify", json=message, headers={"Authorization": auth})
            if sent.status_code == 200:
                break
            await asyncio.sleep(PROBE_POLL_S)
        while time.monotonic() < give_up:
            seen = await client.get(
                f"/api/profiles/email:{email}", params={"events": 0}, headers=ADMIN
            )
            if seen.status_code == 200:
                obs.freshness_s.append(time.monotonic() - due)
                return
            await asyncio.sleep(PROBE_POLL_S)
    except httpx.HTTPError:
        pass
    obs.timed_out += 1


async def lag_events(client: httpx.AsyncClient) -> int | None:
    try:
        answer = await client.get("/api/pipeline", headers=ADMIN)
        return int(answer.json()["lag_events"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


async def observe(port: int, auth: str, rate: int, t0: float, load_end: float, loads: Future[Any]) -> Observations:
    """Probe every 0.5 s and sample lag every 1 s from t0 to load_end; then time the drain."""
    obs = Observations()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=PROBE_GIVE_UP_S, limits=limits
    ) as client:
        probes = [
            asyncio.create_task(
                probe(client, auth, f"probe-{rate}-{i}-{uuid.uuid4().hex[:8]}@fresh.test", due, obs)
            )
            for i, due in enumerate(_every(t0, load_end, PROBE_EVERY_S))
        ]
        for due in _every(t0, load_end, LAG_EVERY_S):
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            lag = await lag_events(client)
            if lag is not None:
                obs.lag_samples.append(lag)
        while not loads.done():  # the senders finish their last batches
            await asyncio.sleep(0.05)
        stopped = time.monotonic()
        obs.lag_at_stop = (await lag_events(client)) or 0
        while time.monotonic() - stopped < DRAIN_CAP_S:
            lag = await lag_events(client)
            if lag is not None:
                obs.lag_samples.append(lag)
                if lag == 0:
                    obs.drain_s = time.monotonic() - stopped
                    break
            await asyncio.sleep(0.1)
        await asyncio.gather(*probes)
    return obs


def _every(start: float, end: float, step: float) -> Iterator[float]:
    n = 0
    while start + n * step < end:
        yield start + n * step
        n += 1


# ---------------------------------------------------------------- one rate, the report


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def freshness_percentile(obs: Observations, q: float) -> float | None:
    """A percentile over all probes, the timed-out ones counting as +infinity (None)."""
    values = obs.freshness_s + [float("inf")] * obs.timed_out
    found = percentile(values, q)
    return None if found is None or found == float("inf") else round(found, 3)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_rate(port: int, auth: str, server_pid: int, rate: int, seconds: float, senders: int) -> dict[str, Any]:
    batches = max(1, round(rate * seconds / BATCH_SIZE))
    interval = BATCH_SIZE / rate
    t0 = time.monotonic() + 1.0  # time for the senders to start
    run_tag = f"r{rate}-{uuid.uuid4().hex[:8]}"
    plans = [
        SenderPlan(port, auth, t0, interval, batches, k, senders, run_tag, max_connections=512)
        for k in range(senders)
    ]
    server_cpu_before = process_cpu_s(server_pid)
    main_cpu_before = time.process_time()
    wall_before = time.monotonic()
    with ProcessPoolExecutor(senders, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(run_sender, plan) for plan in plans]
        everything: Future[Any] = _all_done(futures)
        obs = asyncio.run(observe(port, auth, rate, t0, t0 + batches * interval, everything))
        results = [f.result() for f in futures]
    load_s = batches * interval
    wall_s = time.monotonic() - wall_before
    latencies = [s for r in results for s in r.latencies_s]
    acked = sum(r.acked for r in results)
    sender_cpu = sum(r.cpu_s for r in results)
    p99_fresh = freshness_percentile(obs, 0.99)
    return {
        "offered_events_per_s": rate,
        "seconds": round(load_s, 1),
        "batches": batches,
        "acked_batches": acked,
        "acked_events_per_s": round(acked * BATCH_SIZE / load_s),
        "throttled_429": sum(r.throttled for r in results),
        "failed": sum(r.failed for r in results),
        "batch_latency_p50_s": _round(percentile(latencies, 0.50)),
        "batch_latency_p99_s": _round(percentile(latencies, 0.99)),
        "probes": obs.probes,
        "probes_over_30s": obs.timed_out,
        "freshness_p50_s": freshness_percentile(obs, 0.50),
        "freshness_p99_s": p99_fresh,
        "max_lag_events": max(obs.lag_samples, default=0),
        "lag_at_stop_events": obs.lag_at_stop,
        "drain_s": _round(obs.drain_s),
        "sustained": acked == batches and p99_fresh is not None and p99_fresh <= FRESH_P99_S,
        "generator": {
            "senders": senders,
            "connections": sum(r.connections for r in results),
            "late_starts": sum(r.late_starts for r in results),
            "cpu_s": round(sender_cpu + time.process_time() - main_cpu_before, 2),
            "cpu_share_of_one_core": round(
                (sender_cpu + time.process_time() - main_cpu_before) / wall_s, 3
            ),
        },
        "server_cpu_share_of_one_core": round(
            (process_cpu_s(server_pid) - server_cpu_before) / wall_s, 3
        ),
    }


def _all_done(futures: list[Future[Any]]) -> Future[Any]:
    """One future that is done when all of `futures` are."""
    done: Future[Any] = Future()
    remaining = [len(futures)]

    def one_finished(_: Future[Any]) -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set_result(None)

    for future in futures:
        future.add_done_callback(one_finished)
    return done


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _seconds(value: float | None, over: str = "> 30") -> str:
    return over if value is None else f"{value:.2f}"


def print_table(rows: list[dict[str, Any]], seconds: float, to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"freshness under open-loop load, {seconds:g} s per rate, 100-event batches")
    for column in (
        "offered ev/s",
        "acked ev/s",
        "429s",
        "failed",
        "batch p50 / p99 s",
        "fresh p50 / p99 s",
        "probes > 30 s",
        "max lag ev",
        "drain s",
        "gen CPU",
        "server CPU",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            f"{row['offered_events_per_s']:,}",
            f"{row['acked_events_per_s']:,}",
            str(row["throttled_429"]),
            str(row["failed"]),
            f"{_seconds(row['batch_latency_p50_s'], '-')} / "
            f"{_seconds(row['batch_latency_p99_s'], '-')}",
            f"{_seconds(row['freshness_p50_s'])} / {_seconds(row['freshness_p99_s'])}",
            f"{row['probes_over_30s']}/{row['probes']}",
            f"{row['max_lag_events']:,}",
            _seconds(row["drain_s"], "> 60"),
            f"{row['generator']['cpu_share_of_one_core']:.0%}",
            f"{row['server_cpu_share_of_one_core']:.0%}",
        )
    console = Console(stderr=to_stderr)
    console.print(table)
    sustained = [row["offered_events_per_s"] for row in rows if row["sustained"]]
    console.print(
        "maximum sustainable rate (all acked, freshness p99 <= 1 s): "
        + (f"{max(sustained):,} events/s" if sustained else "none of the rates run")
    )
    console.print(
        "gen CPU: the load generator (senders + probes) as a share of one core; if it nears "
        "100% per sender process, add --senders. Late starts (sends > 10 ms after schedule): "
        + ", ".join(str(row["generator"]["late_starts"]) for row in rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,1000,5000,20000", help="offered events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration per rate")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--json", action="store_true", help="only JSON lines on stdout; table on stderr")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r.strip()]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port)
        try:
            created = httpx.post(
                f"http://127.0.0.1:{port}/api/sources",
                headers=ADMIN,
                json={"name": "freshness", "channel": "server"},
            ).json()
            auth = basic(created["write_key"])
            for rate in rates:
                row = run_rate(port, auth, server.pid, rate, args.seconds, args.senders)
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            stop(server)
    print_table(rows, args.seconds, to_stderr=args.json)


if __name__ == "__main__":
    main()
