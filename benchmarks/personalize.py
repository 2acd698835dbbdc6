"""Decision API benchmark: GET /v1/personalize under open-loop load on a 100k-profile demo.

    python benchmarks/personalize.py [--people 10000] [--scale 6] [--rate 500] [--seconds 20]

1. Loads the demo company (through the collect API, as `tessera demo` does) and copies its
   log `--scale` times with every identifier suffixed per copy (benchmarks/pipeline.py), so
   the store holds about 100,000 live profiles; the pipeline processes it all.
2. Trains the recommendation model, creates four offers (conditions on events, traits and
   consent-free "everyone", one capped) and a publishable key, in this process.
3. Starts `tessera serve` (TESSERA_COLLECTORS=0: the decision API is the core's; with
   collectors each request takes one more hop through them) and waits until it answers
   personal decisions from memory.
4. Offers GET /v1/personalize open-loop at `--rate` per second for `--seconds`: request k is
   due at k / rate whatever the answers do, and its latency runs from that scheduled time
   (no coordinated omission). Visitors: 60% known user ids, 35% anonymous ids of the log,
   5% never seen. Each answer carries the chosen offer and 5 recommendations and is recorded.
   Baseline in the same run: GET /api/health on the same server (the HTTP floor).

Goal: p99 < 10 ms at 500 requests/s. Prints the table on stderr, one JSON line on stdout.
"""

from __future__ import annotations

import argparse
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
from _harness import Table, emit, free_port, run_open_loop, stop, wait_for
from pipeline import load_demo, scale_up

from tessera.personalize import keys, offers
from tessera.personalize import recommendations as recs
from tessera.personalize.decisions import DecisionRequest
from tessera.personalize.offers import OfferSpec
from tessera.results import wire
from tessera.runtime import Runtime
from tessera.settings import Settings

OFFERS = [
    OfferSpec(name="travel-spring", title="15% off cabin suitcases", priority=10,
              condition='did "Product Viewed" where properties.category = "travel"'),
    OfferSpec(name="runners", title="Free socks with trail shoes", priority=8,
              condition='count(event "Product Viewed" where properties.category = "running") >= 2'),
    OfferSpec(name="france", title="Livraison offerte", priority=5,
              condition='traits.country = "FR"', cap_per_day=3),
    OfferSpec(name="welcome", title="Welcome: 10% off your first order", priority=1),
]  # fmt: skip


def prepare(data_dir: Path, reuse: bool) -> tuple[str, list[str], dict[str, Any]]:
    """Process the log, train, create the offers and a key (with `reuse`, a directory
    prepared by an earlier run: only a new key); the visitors to ask about."""
    runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench" * 6))
    try:
        started = time.perf_counter()
        runtime.pipeline.process()
        processed = time.perf_counter() - started
        if reuse:
            trained = recs.status(runtime).model
            assert trained is not None, f"{data_dir} has no model: prepare it again"
        else:
            trained = recs.train(runtime)
            for spec in OFFERS:
                offers.create(runtime, spec)
        key = keys.create(runtime.store, runtime.sources, "web-shop").key
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
        facts = {"profiles": int(row[0]), "events": int(row[1]),
                 "interactions": trained.interactions, "products": trained.products,
                 "process_seconds": round(processed, 1)}  # fmt: skip
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
    return key, paths, facts


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
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--scale", type=int, default=6)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="keep the prepared data here; a later run with the same directory reuses it",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch) / "big"
        reuse = (data_dir / "tessera.duckdb").exists()
        if not reuse:
            demo = Path(scratch) / "demo"
            load_demo(demo, args.people)
            if args.scale > 1:
                scale_up(demo, data_dir, args.scale)
            else:
                shutil.copytree(demo, data_dir)
        _key, paths, facts = prepare(data_dir, reuse)
        port = free_port()
        server = serve(data_dir, port)
        try:
            known = next(p for p in paths if "userId" in p)
            facts["memory_ready_seconds"] = round(wait_until_personal(port, known), 1)
            run_open_loop(
                port,
                paths[:200],
                rate=args.rate,
                seconds=2,
                connections=args.connections,
                headers={},
            )  # fmt: skip  (warm-up)
            results = {}
            for label, requests in (("decision", paths), ("health_baseline", ["/api/health"])):
                results[label] = run_open_loop(
                    port, requests, rate=args.rate, seconds=args.seconds,
                    connections=args.connections, headers={},
                ).summary()  # fmt: skip
        finally:
            stop(server)
        facts["in_process"] = in_process(data_dir, sorted(set(paths)))  # type: ignore[assignment]
    report = {"benchmark": "personalize", **facts, **results, "rate": args.rate,
              "seconds": args.seconds, "connections": args.connections}  # fmt: skip
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
