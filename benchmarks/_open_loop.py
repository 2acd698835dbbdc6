"""An open-loop load generator: 100-event batches to /v1/batch on a fixed schedule.

Batch i is due at t0 + i * interval whatever became of the batches before it (open loop):
sender processes share the schedule, each keeps as many keep-alive connections as it needs
(raw asyncio HTTP/1.1: a client library would cost more CPU than the server under test),
and a batch's latency runs from its SCHEDULED send, so a slow server cannot hide behind
the generator's own queue (no coordinated omission). Used by benchmarks/freshness.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from _harness import read_response, track_message

BATCH_SIZE = 100
LATE_S = 0.010


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
    late_starts: int = 0  # sends started > 10 ms after their schedule (generator lag)
    connection_waits: int = 0  # sends that waited > 10 ms for a free connection slot
    first_ack_at: float = 0.0
    last_ack_at: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    connections: int = 0


def batch_body(run_tag: str, index: int, sent_at: str) -> bytes:
    """A 100-event batch shaped like analytics-python's, with messageIds unique per run."""
    batch = []
    for i in range(BATCH_SIZE):
        n = index * BATCH_SIZE + i
        batch.append(
            track_message(
                n,
                user_id=f"user-{(n * 7919) % 50_000}",
                anonymous_id=f"anon-{n % 200_000}",
                message_id=f"{run_tag}-{n}",
                timestamp=sent_at,
            )
        )
    return orjson.dumps({"batch": batch, "sentAt": sent_at})


def post_request(path: str, headers: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def run_sender(plan: SenderPlan) -> SenderResult:
    """Entry point of one sender process."""
    cpu_before, wall_before = time.process_time(), time.monotonic()
    result = asyncio.run(_send_schedule(plan))
    result.cpu_s = time.process_time() - cpu_before
    result.wall_s = time.monotonic() - wall_before
    return result


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]

#: uvicorn closes a keep-alive connection idle for 5 s: one idle longer than this is not reused
IDLE_LIMIT_S = 2.0


async def _send_schedule(plan: SenderPlan) -> SenderResult:
    result = SenderResult()
    headers = f"Authorization: {plan.authorization}\r\nContent-Type: application/json\r\n"
    idle: list[tuple[float, Connection]] = []  # (idle since, connection), newest last
    slots = asyncio.Semaphore(plan.max_connections)
    in_flight: set[asyncio.Task[None]] = set()

    def reusable() -> Connection | None:
        while idle:
            since, connection = idle.pop()
            if time.monotonic() - since < IDLE_LIMIT_S:
                return connection
            connection[1].close()
        return None

    async def round_trip(connection: Connection, request: bytes) -> int:
        reader, writer = connection
        writer.write(request)
        await writer.drain()
        status = await read_response(reader)
        idle.append((time.monotonic(), connection))
        return status

    async def exchange(request: bytes) -> int:
        """On an idle keep-alive connection, else a new one. A reused connection that the
        server closed without answering is tried once more on a new one, as HTTP clients do
        (a duplicate it might cause is deduplicated on messageId)."""
        connection = reusable()
        if connection is not None:
            try:
                return await round_trip(connection, request)
            except (OSError, asyncio.IncompleteReadError, IndexError):
                connection[1].close()
        result.connections += 1
        return await round_trip(await asyncio.open_connection("127.0.0.1", plan.port), request)

    async def send(index: int, due: float) -> None:
        started = time.monotonic()
        if started - due > LATE_S:  # the generator's own event loop fell behind
            result.late_starts += 1
        async with slots:
            if time.monotonic() - started > LATE_S:  # every connection busy: a slow server
                result.connection_waits += 1
            body = batch_body(plan.run_tag, index, datetime.now(UTC).isoformat())
            try:
                status = await exchange(post_request("/v1/batch", headers, body))
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                result.failed += 1
                return
            if status == 200:
                result.acked += 1
                result.last_ack_at = time.monotonic()
                result.first_ack_at = result.first_ack_at or result.last_ack_at
                result.latencies_s.append(result.last_ack_at - due)
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
    for _, (_, writer) in idle:
        writer.close()
    return result


def plan_load(port: int, auth: str, rate: int, seconds: float, senders: int) -> list[SenderPlan]:
    """Split one schedule (`rate` events/s for `seconds`, starting in 1 s) among senders."""
    batches = max(1, round(rate * seconds / BATCH_SIZE))
    t0 = time.monotonic() + 1.0  # time for the sender processes to start
    run_tag = f"r{rate}-{uuid.uuid4().hex[:8]}"
    return [
        SenderPlan(port, auth, t0, BATCH_SIZE / rate, batches, k, senders, run_tag, 512)
        for k in range(senders)
    ]


def load_summary(plans: list[SenderPlan], results: list[SenderResult]) -> dict[str, Any]:
    """The load side of a row: what was offered, acked and refused, latency from schedule,
    and the generator's own CPU (so a saturated generator shows)."""
    batches, interval = plans[0].batches, plans[0].interval
    load_s = batches * interval
    latencies = [s for r in results for s in r.latencies_s]
    acked = sum(r.acked for r in results)
    return {
        "offered_events_per_s": round(BATCH_SIZE / interval),
        "seconds": round(load_s, 1),
        "batches": batches,
        "acked_batches": acked,
        "acked_events_per_s": acked_rate(results, acked, BATCH_SIZE / interval),
        "throttled_429": sum(r.throttled for r in results),
        "failed": sum(r.failed for r in results),
        "batch_latency_p50_s": rounded(percentile(latencies, 0.50)),
        "batch_latency_p99_s": rounded(percentile(latencies, 0.99)),
        "generator": {
            "senders": len(plans),
            "connections": sum(r.connections for r in results),
            "late_starts": sum(r.late_starts for r in results),
            "connection_waits": sum(r.connection_waits for r in results),
            "busiest_sender_cpu_share": round(
                max(r.cpu_s / r.wall_s if r.wall_s else 0.0 for r in results), 3
            ),
            "senders_cpu_share": round(sum(r.cpu_s for r in results) / load_s, 3),
        },
    }


def acked_rate(results: list[SenderResult], acked: int, offered: float) -> int:
    """Events/s acked between the first and the last ack: the offered rate when the server
    keeps up, its own pace when it answers later and later (the schedule's length would
    hide that). Capped at the offered rate (a server catching up answers in a burst)."""
    if acked < 2:
        return round(offered) if acked else 0
    first = min(r.first_ack_at for r in results if r.acked)
    last = max(r.last_ack_at for r in results)
    span = last - first
    return round(min(offered, (acked - 1) * BATCH_SIZE / span if span > 0 else offered))


def send_all(plans: list[SenderPlan]) -> list[SenderResult]:
    """Run each plan in its own process; their results once all are done."""
    with ProcessPoolExecutor(len(plans), mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(run_sender, plans))


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rounded(value: float | None) -> float | None:
    """Milliseconds' precision for seconds in a JSON row; None stays None."""
    return None if value is None else round(value, 3)
