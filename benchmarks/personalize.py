"""Decision API benchmark: GET /v1/personalize under open-loop load on a 100k-profile demo.

    python benchmarks/personalize.py [--people 3000] [--scale 19] [--rate 500] [--seconds 60]
                                     [--ingest 0] [--warm-ingest 0]

1. Prepares the data once and keeps it under benchmarks/.cache, keyed by --people, --scale
   and the schema (--fresh prepares again): the demo company (`tessera demo`, through the
   collect API and the pipeline), then `--scale` copies of its log *and of what the
   pipeline derived from it* (profiles, identities, summaries, computed traits, the
   ledger...) with every identifier and profile id suffixed per copy, written in bulk in
   SQL: about 100,000 live profiles in a few minutes, where processing the copied log took
   most of the 25 minutes the preparation used to take. Then trains the recommendation
   model on the whole log and creates four offers (conditions on events, traits and
   "everyone", one capped).
2. Each run copies the prepared data (the server records its decisions), adds a
   publishable key and starts `tessera serve` on it (TESSERA_COLLECTORS=0: the decision
   API is the core's; with collectors each request takes one more hop through them), and
   waits until it answers personal decisions from memory.
3. Offers GET /v1/personalize open-loop at `--rate` per second for `--seconds`: request k is
   due at k / rate whatever the answers do, and its latency runs from that scheduled time
   (no coordinated omission). Visitors: 60% known user ids, 35% anonymous ids of the log,
   5% never seen. Each answer carries the chosen offer and 5 recommendations and is recorded.
   Baseline in the same run: GET /api/health on the same server (the HTTP floor).
   With `--ingest RATE`, the same two phases run again while known users send RATE track
   events per second (batches of 100 to /v1/batch, paced): the pipeline changes their
   profiles and the decision memory follows them (its change feed) while it answers.
   With `--warm-ingest SECONDS` too, that ingest also runs for SECONDS before the measured
   phases (then the server settles again): what a server does with its first events since
   it started is then not measured (the runs of 2026-12-03 found it the tail under ingest).

Goal: p99 < 10 ms at 500 requests/s. Prints the table on stderr, one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, basic, emit, free_port, run_open_loop, stop, track_message, wait_for
from pipeline import COPY_SQL, load_demo

from tessera.errors import Conflict
from tessera.personalize import keys, offers
from tessera.personalize import recommendations as recs
from tessera.personalize.decisions import DecisionRequest
from tessera.personalize.offers import OfferSpec
from tessera.results import wire
from tessera.runtime import Runtime
from tessera.settings import Settings
from tessera.store import LATEST_SCHEMA, open_store

OFFERS = [
    OfferSpec(name="travel-spring", title="15% off cabin suitcases", priority=10,
              condition='did "Product Viewed" where properties.category = "travel"'),
    OfferSpec(name="runners", title="Free socks with trail shoes", priority=8,
              condition='count(event "Product Viewed" where properties.category = "running") >= 2'),
    OfferSpec(name="france", title="Livraison offerte", priority=5,
              condition='traits.country = "FR"', cap_per_day=3),
    OfferSpec(name="welcome", title="Welcome: 10% off your first order", priority=1),
]  # fmt: skip


#: A copy's identifier value: e-mails suffixed before the '@' (so they stay e-mails), any
#: other identifier suffixed at the end, as `pipeline.COPY_SQL` does to the events'.
_SUFFIX = "('-c' || k)"
_COPIED_VALUE = (
    "CASE WHEN {kind} = 'email' THEN replace({value}, '@', " + _SUFFIX + " || '@') "
    "ELSE {value} || " + _SUFFIX + " END"
)
_COPIED_IDENTIFIER = (
    "CASE WHEN {column} IS NULL OR {column} = '' THEN {column} ELSE "
    "split_part({column}, ':', 1) || ':' || "
    + _COPIED_VALUE.format(
        kind="split_part({column}, ':', 1)",
        value="substr({column}, length(split_part({column}, ':', 1)) + 2)",
    )
    + " END"
)
#: Copies 1 .. $copies - 1 of what the processed demo holds, each table in one statement
#: (joined with range(1, $copies) AS c(k)): the log, and the derived state with every
#: profile id and identifier suffixed with -ck and every seq and ledger id offset.
#: Phones are left out of the copies (a suffixed phone is no phone, and a changed digit
#: could make two people one): the decisions are asked by user id and anonymous id.
_COPIES = "range(1, $copies) AS c(k)"
COPY_DERIVED = [
    COPY_SQL.replace("CASE WHEN phone IS NULL THEN NULL ELSE phone || $digits END", "NULL")
    .replace("$suffix", _SUFFIX)
    .replace("$offset", "($base * k)")
    .replace("FROM events WHERE", f"FROM events, {_COPIES} WHERE"),
    "INSERT INTO event_profiles SELECT seq + $base * k, profile_id || "
    + _SUFFIX
    + f" FROM event_profiles, {_COPIES} WHERE seq <= $base",
    "INSERT INTO profiles SELECT profile_id || " + _SUFFIX + ", created_seq + $base * k, "
    "merged_into || " + _SUFFIX + f", flagged FROM profiles, {_COPIES}",
    "INSERT INTO identities SELECT type, "
    + _COPIED_VALUE.format(kind="type", value="value")
    + ", profile_id || "
    + _SUFFIX
    + ", first_seq + $base * k "
    f"FROM identities, {_COPIES} WHERE type <> 'phone'",
    "INSERT INTO identity_ledger SELECT id + $ledger * k, seq + $base * k, kind, "
    "CASE WHEN profile_id = '' THEN '' ELSE profile_id || "
    + _SUFFIX
    + " END, "
    + _COPIED_IDENTIFIER.format(column="identifier")
    + ", "
    + _COPIED_IDENTIFIER.format(column="other_identifier")
    + ", other_profile_id || "
    + _SUFFIX
    + f", rule FROM identity_ledger, {_COPIES} "
    "WHERE coalesce(identifier, '') NOT LIKE 'phone:%' "
    "AND coalesce(other_identifier, '') NOT LIKE 'phone:%'",
    *(
        f"INSERT INTO {table} SELECT profile_id || {_SUFFIX}, * EXCLUDE (profile_id, k) "
        f"FROM {table}, {_COPIES}"
        for table in ("profile_summaries", "computed_traits", "trait_aggregates")
    ),
    f"INSERT INTO segment_members SELECT segment_id, profile_id || {_SUFFIX}, "
    f"* EXCLUDE (segment_id, profile_id, k) FROM segment_members, {_COPIES}",
]


def scale_processed(source: Path, target: Path, copies: int) -> None:
    """`copies` times a processed demo, log and derived state alike: copy k has every
    identifier and profile id suffixed with -ck. What the pipeline would derive from the
    copied log, written in bulk in SQL (one statement per table for all the copies),
    where processing the copied log took most of the 25 minutes the preparation used to
    take."""
    shutil.copytree(source, target)
    runtime = Runtime.open(Settings(data_dir=target, admin_token="bench" * 6))
    store = runtime.store
    try:
        base = int(store.fetch_one("SELECT max(seq) FROM events")[0])  # type: ignore[index]
        ledger = int(store.fetch_one("SELECT coalesce(max(id), 0) FROM identity_ledger")[0])  # type: ignore[index]
        assert ledger and int(store.fetch_one(  # type: ignore[index]
            "SELECT value FROM pipeline_state WHERE key = 'processed_seq'")[0]) == base, (
            "the demo must be processed whole before it is copied"
        )  # fmt: skip
        values = {"base": base, "ledger": ledger, "copies": copies}
        if copies > 1:
            with store.transaction() as batch:
                for sql in COPY_DERIVED:
                    batch.execute(sql, {k: v for k, v in values.items() if f"${k}" in sql})
                batch.execute(
                    "UPDATE pipeline_state SET value = ? WHERE key = 'processed_seq'",
                    [base * copies],
                )
    finally:
        runtime.close()


def prepare(data_dir: Path) -> dict[str, Any]:
    """Train the model and create the offers on a processed store."""
    runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench" * 6))
    try:
        started = time.perf_counter()
        trained = recs.train(runtime)
        for spec in OFFERS:
            # The demo has offers of its own, one of the same name: theirs stays.
            with contextlib.suppress(Conflict):
                offers.create(runtime, spec)
        return {"interactions": trained.interactions, "products": trained.products,
                "train_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    finally:
        runtime.close()


def visitors(data_dir: Path) -> tuple[list[str], dict[str, Any]]:
    """A new publishable key and 5,000 visitors to ask about (60% known user ids, 35%
    anonymous ids of the log, 5% never seen); the store's size; a write key and the known
    user ids (for `--ingest`)."""
    runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench" * 6))
    try:
        key = keys.create(runtime, runtime.sources, "web-shop").key
        write_key = runtime.sources.create("bench-ingest", "server").write_key
        store = runtime.store
        users = [
            r[0] for r in store.fetch_all("SELECT value FROM identities WHERE type = 'user_id'")
        ]
        cookies = [r[0] for r in store.fetch_all(
            "SELECT value FROM identities WHERE type = 'anonymous_id'")]  # fmt: skip
        row = store.fetch_one(
            "SELECT (SELECT count(*) FROM profiles WHERE merged_into IS NULL), "
            "(SELECT count(*) FROM events)"
        )
        assert row is not None
        facts = {"profiles": int(row[0]), "events": int(row[1]), "write_key": write_key,
                 "users": users}  # fmt: skip
    finally:
        runtime.close()
    rng = random.Random(5)
    paths = []
    for n in range(5000):
        draw = rng.random()
        if draw < 0.60:
            who = {"userId": rng.choice(users)}
        elif draw < 0.95:
            who = {"anonymousId": rng.choice(cookies)}
        else:
            who = {"anonymousId": f"never-seen-{n}"}
        paths.append("/v1/personalize?" + urlencode({**who, "key": key}))
    return paths, facts


class Ingest:
    """Known users' track events at `rate` per second while it runs: 100-event batches to
    /v1/batch, each due at k / (rate / 100) s from the start (open-loop), sent from a
    process of its own. In a thread of the load generator's process, building and
    encoding each batch held that process's GIL for a few milliseconds ten times a
    second, and the generator's event loop, which stamps the decisions' answers, waited
    behind it (up to Python's 5 ms switch interval): the client's own delay counted in the
    server's p99."""

    def __init__(self, port: int, write_key: str, users: list[str], rate: float) -> None:
        self.port, self.write_key, self.users, self.rate = port, write_key, users, rate
        self.sent = self.acked = self.late = 0
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._counts = context.Array("q", 3)  # sent, acked, late
        self._process = context.Process(
            target=_send_events,
            args=(port, write_key, users, rate, self._ready, self._stop, self._counts),
            daemon=True,
        )

    def __enter__(self) -> Ingest:
        if self.rate > 0:
            self._process.start()
            self._ready.wait(120)  # a new interpreter imports this module first
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.rate > 0:
            self._process.join(60)
        self.sent, self.acked, self.late = list(self._counts)


def _send_events(
    port: int, write_key: str, users: list[str], rate: float, ready: Any, stop: Any, counts: Any
) -> None:
    """`Ingest`'s sender (in its own process): counts[0..2] = sent, acked, batches late
    by over a second."""
    ready.set()
    rng = random.Random(7)
    every = 100 / rate
    headers = {"Authorization": basic(write_key), "Content-Type": "application/json"}
    started = time.monotonic()
    n = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        while not stop.is_set():
            due = started + (n // 100) * every
            wait = due - time.monotonic()
            if wait > 0:
                stop.wait(wait)
            elif wait < -1:
                counts[2] += 1
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            batch = []
            for _ in range(100):
                user = rng.choice(users)
                batch.append(track_message(
                    n, user_id=user, anonymous_id=f"a-{user}", message_id=f"ingest-{n}",
                    timestamp=stamp))  # fmt: skip
                n += 1
            answer = client.post("/v1/batch", content=json.dumps({"batch": batch}),
                                 headers=headers)  # fmt: skip
            counts[0] += 100
            counts[1] += 100 if answer.status_code == 200 else 0


def prepared(cache: Path, people: int, scale: int, fresh: bool) -> tuple[Path, dict[str, Any]]:
    """The prepared data directory for these parameters, built once and kept under
    `cache` (keyed by the parameters and the schema, so an upgrade prepares afresh)."""
    folder = cache / f"personalize-p{people}-x{scale}-schema{LATEST_SCHEMA}"
    facts_file = folder / "prepared.json"
    if facts_file.exists() and not fresh:
        return folder / "data", {**json.loads(facts_file.read_text()), "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    demo = folder / "demo"
    load_demo(demo, people)  # `tessera demo`: loaded and processed
    timings["demo_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    scale_processed(demo, folder / "data", scale)
    shutil.rmtree(demo)
    timings["scale_seconds"] = round(time.perf_counter() - started, 1)
    timings |= prepare(folder / "data")
    facts_file.write_text(json.dumps(timings))
    return folder / "data", {**timings, "cached": False}


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`tessera serve` on the data, waited for up to 10 minutes (on a busy machine a server
    opening a large store takes longer than the harness's 30 s)."""
    env = {
        **os.environ,
        "TESSERA_DATA_DIR": str(data_dir),
        "TESSERA_PORT": str(port),
        "TESSERA_ADMIN_TOKEN": "bench-admin-token-0123456789",
        "TESSERA_COLLECTORS": "0",
    }
    log_path = data_dir.parent / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "tessera.cli", "serve"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/api/health", process, log_path, timeout=600)
    except BaseException:
        stop(process)
        raise
    return process


def without_destinations(data_dir: Path) -> int:
    """Turn the demo's destinations off in the served copy: the 18 copies' three million
    events are not new, yet a destination would replay them all to its files while the
    decisions are measured (seen: the demo lake's worker held a core for minutes)."""
    store = open_store(data_dir / "tessera.duckdb")
    try:
        row = store.fetch_one("SELECT count(*) FROM destinations WHERE enabled")
        store.execute("UPDATE destinations SET enabled = FALSE")
        return int(row[0]) if row else 0
    finally:
        store.close()


def wait_until_settled(pid: int, timeout: float = 600, idle_share: float = 0.2) -> float:
    """Seconds until the server's start-up work is done (loading the graph, the first
    refresh of every computed trait for 100k profiles): its CPU use over 2 s falls below
    `idle_share` of a core. Steady state is what a visitor meets; start-up is reported."""
    started = time.monotonic()

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    while time.monotonic() - started < timeout:
        before = cpu()
        time.sleep(2)
        if cpu() - before < 2 * idle_share:
            break
    return time.monotonic() - started


def wait_until_personal(port: int, path: str, timeout: float = 300) -> float:
    """Seconds until the server answers a known visitor from its loaded memory."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
            decision = answer.json() if answer.status_code == 200 else {}
            # Personal (the pipeline's memory) and with an offer (the decision memory
            # loaded: "welcome" is for everyone).
            if decision.get("personal") and decision.get("offers"):
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server never answered a personal decision")


def in_process(data_dir: Path, paths: list[str]) -> dict[str, dict[str, float]]:
    """The decision alone, without HTTP: CPU time per call (thread time, so other processes
    on a busy machine count less), first for each visitor (recommendations computed) and
    again (from the cache)."""
    runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench" * 6))
    try:
        runtime.pipeline.load_memory()
        personalizer = runtime.personalizer
        personalizer.load()
        asked = []
        for path in paths:
            query = dict(parse_qsl(path.split("?", 1)[1]))
            query.pop("key", None)
            asked.append(DecisionRequest.model_validate(query))
        out = {}
        for label in ("first", "again"):
            costs = []
            for request in asked:
                started = time.thread_time_ns()
                wire(personalizer.decide(request, record=False))
                costs.append((time.thread_time_ns() - started) / 1000)
            costs.sort()
            out[label] = {
                "decisions": len(costs),
                "cpu_p50_us": round(costs[len(costs) // 2], 1),
                "cpu_p99_us": round(costs[int(len(costs) * 0.99)], 1),
                "cpu_mean_us": round(sum(costs) / len(costs), 1),
            }
        return out
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=3_000, help="people of the demo")
    parser.add_argument("--scale", type=int, default=19, help="copies of the demo")
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--ingest", type=float, default=0,
                        help="also measure while known users send this many events/s")  # fmt: skip
    parser.add_argument(
        "--cache", type=Path, default=Path(__file__).resolve().parent / ".cache",
        help="where prepared data is kept between runs (keyed by --people, --scale, schema)",
    )  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="prepare again, ignoring the cache")
    parser.add_argument(
        "--warm-ingest", type=float, default=0,
        help="before measuring, send --ingest's events for this many seconds, then settle "
        "(the server's first events since it started are not in the measured phases)",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    source, facts = prepared(args.cache, args.people, args.scale, args.fresh)
    with tempfile.TemporaryDirectory() as scratch:
        # The server records decisions: it runs on a copy, the prepared data stays as it is.
        data_dir = Path(scratch) / "data"
        shutil.copytree(source, data_dir)
        facts["destinations_turned_off"] = without_destinations(data_dir)
        paths, sizes = visitors(data_dir)
        write_key, users = sizes.pop("write_key"), sizes.pop("users")
        facts |= sizes
        facts["prepare_seconds"] = round(time.perf_counter() - started, 1)
        port = free_port()
        server = serve(data_dir, port)
        try:
            known = next(p for p in paths if "userId" in p)
            facts["memory_ready_seconds"] = round(wait_until_personal(port, known), 1)
            facts["settled_seconds"] = round(wait_until_settled(server.pid), 1)
            run_open_loop(
                port,
                paths[:200],
                rate=args.rate,
                seconds=2,
                connections=args.connections,
                headers={},
            )  # fmt: skip  (warm-up)
            if args.warm_ingest and args.ingest:
                with Ingest(port, write_key, users, args.ingest):
                    time.sleep(args.warm_ingest)
                facts["warm_ingest_seconds"] = args.warm_ingest
                facts["settled_after_warm_seconds"] = round(wait_until_settled(server.pid), 1)
            results = {}
            phases = [("", 0.0)] + ([(f" + {args.ingest:g} ev/s", args.ingest)]
                                    if args.ingest else [])  # fmt: skip
            for suffix, rate in phases:
                with Ingest(port, write_key, users, rate) as ingest:
                    for label, requests in (("decision", paths),
                                            ("health_baseline", ["/api/health"])):  # fmt: skip
                        results[label + suffix] = run_open_loop(
                            port, requests, rate=args.rate, seconds=args.seconds,
                            connections=args.connections, headers={},
                        ).summary()  # fmt: skip
                if rate:
                    facts["ingest"] = {"rate": rate, "sent": ingest.sent, "acked": ingest.acked,
                                       "batches_late_over_1s": ingest.late}  # fmt: skip
        finally:
            stop(server)
        facts["in_process"] = in_process(data_dir, sorted(set(paths)))  # type: ignore[assignment]
    report = {"benchmark": "personalize", **facts, **results, "rate": args.rate,
              "seconds": args.seconds, "connections": args.connections,
              "ingest_rate": args.ingest}  # fmt: skip
    table = Table(
        f"GET /v1/personalize offered open-loop at {args.rate:g}/s over {args.connections} "
        f"connections for {args.seconds:g} s, {facts['profiles']:,} profiles (latency from "
        "the scheduled send; service time from the actual send)",
        ["request", "offered/s", "achieved/s", "p50 ms", "p99 ms", "max ms", "service p50 ms",
         "service p99 ms", "unanswered", "non-200"],
    )  # fmt: skip
    for label, row in results.items():
        table.add(label, row["offered_per_s"], row["achieved_per_s"], row["p50_ms"],
                  row["p99_ms"], row["max_ms"], row["service_p50_ms"], row["service_p99_ms"],
                  row["unanswered"], row["non_200"])  # fmt: skip
    alone = Table(
        "the decision alone, in process (no HTTP): CPU time per call",
        ["pass", "decisions", "p50 µs", "p99 µs", "mean µs"],
    )
    for label, row in facts["in_process"].items():  # type: ignore[attr-defined]
        what = "recommendations computed" if label == "first" else "cached"
        alone.add(f"{label} ({what})", row["decisions"], row["cpu_p50_us"], row["cpu_p99_us"],
                  row["cpu_mean_us"])  # fmt: skip
    emit(report, table, alone)


if __name__ == "__main__":
    main()
