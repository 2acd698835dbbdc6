"""Freshness under load: how soon a new person is visible while events keep arriving.

    python benchmarks/freshness.py [--rates 100,1000,5000,20000] [--seconds 60]
                                   [--senders 2] [--collectors 2] [--no-trait] [--json]
    python benchmarks/freshness.py --generator-only [--rates ...] [--seconds ...]

For each offered rate, on one real `tessera serve` (a fresh data directory, one source):

1. load: 100-event batches to /v1/batch, OPEN LOOP. Batch i is due at t0 + i * interval
   whatever happened to the batches before it; sender processes share the schedule and
   each keeps as many keep-alive connections as it needs (a send that finds no idle
   connection opens one), so a slow server does not slow the offer down. A batch's latency
   is measured from its SCHEDULED send time, so queueing in the generator counts against
   the server, never hides it (no coordinated omission). 200s, 429s and other failures
   are counted; nothing is retried.
2. probes: every 0.5 s one `identify` with a new e-mail (and a "Probe Seen" track from the
   same person, counted by a computed trait created at start; --no-trait leaves it out),
   then `GET /api/profiles/email:...` polled until it answers 200 (freshness) and until
   its computed trait counts the track (trait freshness), both from the probe's scheduled
   send. A probe still unanswered 30 s after its schedule counts as "> 30 s".
3. lag: `GET /api/pipeline` lag_events every second during the load; after the load
   stops, the time until lag_events is 0 again (capped at 60 s). The next rate starts then.

Prints one JSON line per rate (on stdout) and a table, then the maximum sustainable rate
among those run: every batch acked and freshness p99 <= 1 s. The CPU the generator
(senders + probes) and the server used is reported, so a saturated generator shows;
--generator-only offers the same schedules to benchmarks/bare_parse_server.py instead.
Rates run in the order given on the same server: the log grows from one rate to the next,
as it would in production. `--collectors 0,2` runs every rate once per topology (a fresh
server with TESSERA_COLLECTORS set to each value, in the order given): the server's CPU is
the core's and its collectors'.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import basic, free_port, start_server, stop
from _open_loop import (
    load_summary,
    percentile,
    plan_load,
    rounded,
    run_sender,
    send_all,
)

PROBE_EVERY_S = 0.5
PROBE_POLL_S = 0.05
PROBE_GIVE_UP_S = 30.0
LAG_EVERY_S = 1.0
DRAIN_CAP_S = 60.0
FRESH_P99_S = 1.0
PROBE_EVENT = "Probe Seen"
PROBE_TRAIT = "probe_seen"
ADMIN = {"Authorization": "Bearer bench-admin-token-0123456789"}


# ---------------------------------------------------------------- probes and lag (main process)


@dataclass
class Observations:
    freshness_s: list[float] = field(default_factory=list)
    probes: int = 0
    timed_out: int = 0
    trait_freshness_s: list[float] = field(default_factory=list)
    trait_timed_out: int = 0
    server_cpu_s: float = 0.0  # the server's CPU from t0 to the last batch answered
    load_wall_s: float = 0.0
    lag_samples: list[int] = field(default_factory=list)
    drain_s: float | None = None
    lag_at_stop: int = 0


async def probe(
    client: httpx.AsyncClient, auth: str, email: str, due: float, obs: Observations, trait: bool
) -> None:
    """Identify a new person at `due` (and, with `trait`, send one "Probe Seen" track from
    them), then poll their 360° view until it answers, and until its computed trait counts
    that track."""
    now = time.monotonic()
    if due > now:
        await asyncio.sleep(due - now)
    anonymous_id = f"probe-{uuid.uuid4()}"
    at = datetime.now(UTC).isoformat()
    batch: list[dict[str, Any]] = [
        {
            "type": "identify",
            "anonymousId": anonymous_id,
            "messageId": str(uuid.uuid4()),
            "traits": {"email": email},
            "timestamp": at,
        }
    ]
    if trait:
        batch.append(
            {
                "type": "track",
                "event": PROBE_EVENT,
                "anonymousId": anonymous_id,
                "messageId": str(uuid.uuid4()),
                "timestamp": at,
            }
        )
    give_up = due + PROBE_GIVE_UP_S
    obs.probes += 1
    seen = counted = False
    try:
        while time.monotonic() < give_up:  # a batch refused with 429 is tried again
            sent = await client.post(
                "/v1/batch", json={"batch": batch}, headers={"Authorization": auth}
            )
            if sent.status_code == 200:
                break
            await asyncio.sleep(PROBE_POLL_S)
        while time.monotonic() < give_up:
            answer = await client.get(
                f"/api/profiles/email:{email}", params={"events": 0}, headers=ADMIN
            )
            if answer.status_code == 200:
                if not seen:
                    seen = True
                    obs.freshness_s.append(time.monotonic() - due)
                if not trait:
                    return
                if answer.json().get("computed_traits", {}).get(PROBE_TRAIT):
                    counted = True
                    obs.trait_freshness_s.append(time.monotonic() - due)
                    return
            await asyncio.sleep(poll_interval(time.monotonic() - due))
    except (httpx.HTTPError, ValueError):
        pass
    if not seen:
        obs.timed_out += 1
    if trait and not counted:
        obs.trait_timed_out += 1


def poll_interval(elapsed: float) -> float:
    """50 ms for the first second, then 5% of the time already waited (at most 250 ms): the
    figure keeps a resolution of 5%, and probes of a server that is many seconds behind do
    not load it with look-ups that compete with the pipeline they are measuring."""
    return min(0.25, max(PROBE_POLL_S, 0.05 * elapsed))


async def lag_events(client: httpx.AsyncClient) -> int | None:
    try:
        answer = await client.get("/api/pipeline", headers=ADMIN)
        return int(answer.json()["lag_events"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class Watch:
    """What the main process watches during one rate's load."""

    port: int
    auth: str
    rate: int
    t0: float
    load_end: float  # the schedule's end; the senders finish when their last batch is answered
    server_pid: int
    trait: bool


async def observe(watch: Watch, loads: Future[Any]) -> Observations:
    """Probe every 0.5 s and sample lag every 1 s from t0 to load_end; then time the drain."""
    obs = Observations()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{watch.port}", timeout=PROBE_GIVE_UP_S, limits=limits
    ) as client:
        probes = [
            asyncio.create_task(
                probe(client, watch.auth, _probe_email(watch.rate, i), due, obs, watch.trait)
            )
            for i, due in enumerate(_every(watch.t0, watch.load_end, PROBE_EVERY_S))
        ]
        await asyncio.sleep(max(0.0, watch.t0 - time.monotonic()))
        server_cpu_at_t0 = process_cpu_s(watch.server_pid)
        for due in _every(watch.t0, watch.load_end, LAG_EVERY_S):
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            lag = await lag_events(client)
            if lag is not None:
                obs.lag_samples.append(lag)
        while not loads.done():  # the senders finish their last batches
            await asyncio.sleep(0.05)
        stopped = time.monotonic()
        obs.server_cpu_s = process_cpu_s(watch.server_pid) - server_cpu_at_t0
        obs.load_wall_s = stopped - watch.t0
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


def _probe_email(rate: int, index: int) -> str:
    return f"probe-{rate}-{index}-{uuid.uuid4().hex[:8]}@fresh.test"


def _every(start: float, end: float, step: float) -> Iterator[float]:
    n = 0
    while start + n * step < end:
        yield start + n * step
        n += 1


# ---------------------------------------------------------------- one rate, the report


def with_timeouts(seconds: list[float], timed_out: int, q: float) -> float | None:
    """A percentile over all probes, the timed-out ones counting as +infinity (None)."""
    values = seconds + [float("inf")] * timed_out
    found = percentile(values, q)
    return None if found is None or found == float("inf") else round(found, 3)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and of every process below it (the core and
    its collectors; children that exited and were waited for count too), Linux /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it exited between listing and reading
    ticks = sum(int(value) for value in fields[11:15])
    seconds = ticks / os.sysconf("SC_CLK_TCK")
    return seconds + sum(process_cpu_s(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def run_rate(
    port: int, auth: str, server_pid: int, rate: int, seconds: float, options: argparse.Namespace
) -> dict[str, Any]:
    """Offer `rate` events/s for `seconds`, watch, and summarise it as one JSON-able row."""
    plans = plan_load(port, auth, rate, seconds, options.senders)
    t0, load_s = plans[0].t0, plans[0].batches * plans[0].interval
    watch = Watch(port, auth, rate, t0, t0 + load_s, server_pid, options.trait)
    main_cpu_before = time.process_time()
    wall_before = time.monotonic()
    with ProcessPoolExecutor(len(plans), mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(run_sender, plan) for plan in plans]
        obs = asyncio.run(observe(watch, _all_done(futures)))
        results = [f.result() for f in futures]
    main_cpu_share = (time.process_time() - main_cpu_before) / (time.monotonic() - wall_before)
    row = load_summary(plans, results)
    row["generator"]["probes_cpu_share"] = round(main_cpu_share, 3)
    p99_fresh = with_timeouts(obs.freshness_s, obs.timed_out, 0.99)
    p99_trait = with_timeouts(obs.trait_freshness_s, obs.trait_timed_out, 0.99)
    all_acked = row["acked_batches"] == row["batches"]
    return row | {
        "probes": obs.probes,
        "probes_over_30s": obs.timed_out,
        "freshness_p50_s": with_timeouts(obs.freshness_s, obs.timed_out, 0.50),
        "freshness_p99_s": p99_fresh,
        "trait_probes_over_30s": obs.trait_timed_out if options.trait else None,
        "trait_freshness_p50_s": (
            with_timeouts(obs.trait_freshness_s, obs.trait_timed_out, 0.50)
            if options.trait
            else None
        ),
        "trait_freshness_p99_s": p99_trait if options.trait else None,
        "max_lag_events": max(obs.lag_samples, default=0),
        "lag_at_stop_events": obs.lag_at_stop,
        "drain_s": rounded(obs.drain_s),
        "sustained": all_acked and p99_fresh is not None and p99_fresh <= FRESH_P99_S,
        "sustained_with_trait": (
            all_acked and p99_trait is not None and p99_trait <= FRESH_P99_S
            if options.trait
            else None
        ),
        "server_cpu_share": round(obs.server_cpu_s / obs.load_wall_s, 3),
        "machine_load_1m": round(os.getloadavg()[0], 2),
    }


def run_generator_alone(rates: list[int], seconds: float, senders: int) -> list[dict[str, Any]]:
    """The same schedules against benchmarks/bare_parse_server.py (parse, answer 200): what
    the generator offers when the server costs next to nothing, and the CPU it takes."""
    port = free_port()
    script = Path(__file__).with_name("bare_parse_server.py")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            Path(tmp) / "bare", port, command=[sys.executable, str(script), str(port)]
        )
        try:
            for rate in rates:
                plans = plan_load(port, "Basic Og==", rate, seconds, senders)
                row = {"target": "bare-parse"} | load_summary(plans, send_all(plans))
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            stop(server)
    return rows


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


def _seconds(value: float | None, over: str = "> 30") -> str:
    return over if value is None else f"{value:.2f}"


def print_table(rows: list[dict[str, Any]], seconds: float, to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    trait = any(row["sustained_with_trait"] is not None for row in rows)
    table = Table(
        title=f"freshness under open-loop load: {seconds:g} s per rate, 100-event batches"
    )
    columns = ["collectors", "offered ev/s", "acked ev/s", "429s", "failed", "batch p50/p99 s"]
    columns += ["fresh p50/p99 s", "> 30 s"]
    columns += ["trait p50/p99 s", "> 30 s"] if trait else []
    columns += ["max lag ev", "drain s", "gen CPU", "server CPU"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        generator = row["generator"]
        cells = [
            str(row.get("collectors", "default")),
            f"{row['offered_events_per_s']:,}",
            f"{row['acked_events_per_s']:,}",
            str(row["throttled_429"]),
            str(row["failed"]),
            f"{_seconds(row['batch_latency_p50_s'], '-')} / "
            f"{_seconds(row['batch_latency_p99_s'], '-')}",
            f"{_seconds(row['freshness_p50_s'])} / {_seconds(row['freshness_p99_s'])}",
            f"{row['probes_over_30s']}/{row['probes']}",
        ]
        if trait:
            cells += [
                f"{_seconds(row['trait_freshness_p50_s'])} / "
                f"{_seconds(row['trait_freshness_p99_s'])}",
                f"{row['trait_probes_over_30s']}/{row['probes']}",
            ]
        cells += [
            f"{row['max_lag_events']:,}",
            _seconds(row["drain_s"], "> 60"),
            f"{generator['senders_cpu_share'] + generator['probes_cpu_share']:.0%}"
            f" (max {generator['busiest_sender_cpu_share']:.0%})",
            f"{row['server_cpu_share']:.0%}",
        ]
        table.add_row(*cells)
    console = Console(stderr=to_stderr, width=max(Console().width, 160))
    console.print(table)
    console.print(
        "maximum sustainable rate (every batch acked, freshness p99 <= 1 s): "
        + _best(rows, "sustained")
        + ("; with the computed trait updated too: " + _best(rows, "sustained_with_trait"))
        * bool(trait)
    )
    console.print(
        "batch latency and freshness run from the SCHEDULED send. CPU as a share of one core "
        "over the load: gen = senders + probes (max = the busiest sender process; near 100% "
        "means the generator is the limit: add --senders). Sends the generator started > 10 ms "
        "late: "
        + ", ".join(f"{row['generator']['late_starts']:,}" for row in rows)
        + "; sends that waited > 10 ms for a free connection (512 per sender, all busy: a "
        "slow server): " + ", ".join(f"{row['generator']['connection_waits']:,}" for row in rows)
    )
    busiest = max(row["machine_load_1m"] for row in rows)
    if busiest > (os.cpu_count() or 1):
        console.print(
            f"WARNING: the machine's load average reached {busiest} on {os.cpu_count()} cores: "
            "other work competed with the server; run again on a quiet machine before quoting."
        )


def print_generator_table(rows: list[dict[str, Any]], seconds: float, to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"the load generator alone, against the bare-parse server, {seconds:g} s")
    columns = ["offered ev/s", "acked ev/s", "failed", "batch p50/p99 s", "late sends"]
    for column in [*columns, "connections", "senders CPU", "busiest sender"]:
        table.add_column(column, justify="right")
    for row in rows:
        generator = row["generator"]
        table.add_row(
            f"{row['offered_events_per_s']:,}",
            f"{row['acked_events_per_s']:,}",
            str(row["failed"] + row["throttled_429"]),
            f"{_seconds(row['batch_latency_p50_s'], '-')} / "
            f"{_seconds(row['batch_latency_p99_s'], '-')}",
            f"{generator['late_starts']:,}",
            str(generator["connections"]),
            f"{generator['senders_cpu_share']:.0%}",
            f"{generator['busiest_sender_cpu_share']:.0%}",
        )
    Console(stderr=to_stderr, width=max(Console().width, 160)).print(table)


def _best(rows: list[dict[str, Any]], key: str) -> str:
    """The highest sustained rate, per topology when several ran."""
    answers = []
    topologies = list(dict.fromkeys(row.get("collectors", "default") for row in rows))
    for topology in topologies:
        rates = [
            row["offered_events_per_s"]
            for row in rows
            if row[key] and row.get("collectors", "default") == topology
        ]
        found = f"{max(rates):,} events/s" if rates else "none of the rates run"
        answers.append(found if len(topologies) == 1 else f"{found} (collectors {topology})")
    return "; ".join(answers)


def create_probe_trait(port: int) -> None:
    """A computed trait counting each probe's "Probe Seen" track, so probes can wait for it."""
    created = httpx.post(
        f"http://127.0.0.1:{port}/api/computed-traits",
        headers=ADMIN,
        json={"name": PROBE_TRAIT, "function": "count", "event": PROBE_EVENT},
    )
    created.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="100,1000,5000,20000", help="offered events/s, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration per rate")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument(
        "--collectors",
        default="",
        help="TESSERA_COLLECTORS values to compare, comma-separated (default: the server's own)",
    )
    parser.add_argument(
        "--no-trait",
        dest="trait",
        action="store_false",
        help="probes wait only for the 360° view, not for a computed trait counting them",
    )
    parser.add_argument(
        "--generator-only",
        action="store_true",
        help="run the load against benchmarks/bare_parse_server.py instead: the generator's limit",
    )
    parser.add_argument(
        "--json", action="store_true", help="only JSON lines on stdout; the table on stderr"
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    if not rates or min(rates) <= 0:
        parser.error(f"--rates {args.rates!r}: expected positive events/s, e.g. 100,1000")

    if args.generator_only:
        alone = run_generator_alone(rates, args.seconds, args.senders)
        print_generator_table(alone, args.seconds, to_stderr=args.json)
        return
    rows = []
    topologies = [c.strip() for c in args.collectors.split(",") if c.strip()] or [None]
    for collectors in topologies:
        rows += run_topology(collectors, rates, args)
    print_table(rows, args.seconds, to_stderr=args.json)


def run_topology(
    collectors: str | None, rates: list[int], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every rate on one fresh server with TESSERA_COLLECTORS=`collectors`."""
    rows = []
    env = {} if collectors is None else {"TESSERA_COLLECTORS": collectors}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(tmp) / "data", port, env)
        try:
            created = httpx.post(
                f"http://127.0.0.1:{port}/api/sources",
                headers=ADMIN,
                json={"name": "freshness", "channel": "server"},
            ).json()
            auth = basic(created["write_key"])
            if args.trait:
                create_probe_trait(port)
            for rate in rates:
                row = run_rate(port, auth, server.pid, rate, args.seconds, args)
                row = {"collectors": collectors or "default"} | row
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            stop(server)
    return rows


if __name__ == "__main__":
    main()
