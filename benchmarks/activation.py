"""Destinations (issue 13): delivery throughput, isolation, latency, and correctness under
faults, each beside its baseline in the same run.

1. Throughput to a local webhook with batching: a log of N events replayed to a healthy
   receiver (`replay --since` the start), beside the baseline of this process posting the
   same batches straight to a receiver (the loopback + receiver ceiling).
2. Isolation: a healthy destination's throughput alone, then with a second destination
   that never answers and a third answering 500 to every other request (ratio of the two).
3. End-to-end latency at a sustained rate: from the moment /v1/batch acked an event to the
   moment the webhook received it, open loop at RATE events/s; beside it the /v1 ack
   latency itself.
4. Correctness under faults: a receiver failing 30% of requests (500, 429 + Retry-After,
   timeouts) and a kill -9 of Tessera mid-delivery: every event received, duplicates, all
   duplicates with the same messageId; beside a healthy receiver and no kill.

    .venv/bin/python benchmarks/activation.py [--events 60000] [--rate 5000] > activation.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _harness import Table, basic, emit, free_port, percentile, start_server  # noqa: E402

from tests.receivers import Receiver  # noqa: E402

TOKEN = {"Authorization": "Bearer bench-admin-token-0123456789"}
BATCH = 500


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_server(data_dir, self.port)
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def restart(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_server(self.data_dir, self.port)
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, headers=TOKEN, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def source(self, name: str) -> str:
        return str(self.admin("POST", "/api/sources", json={"name": name, "channel": "web"})
                   ["write_key"])  # fmt: skip

    def destination(self, name: str, url: str, **options: Any) -> None:
        settings = {
            "url": url,
            "batch_size": BATCH,
            "linger_seconds": 0.05,
            "concurrency": 4,
            "max_requests_per_second": 1000,
            **options,
        }
        body = {"name": name, "kind": "webhook", "options": settings}
        self.admin("POST", "/api/destinations", json=body)

    def replay_all(self, name: str) -> None:
        since = {"since": "2000-01-01T00:00:00Z"}
        self.admin("POST", f"/api/destinations/{name}/replay", json=since)

    def caught_up(self) -> None:
        while self.admin("GET", "/api/pipeline")["lag_events"]:
            time.sleep(0.2)

    def post(self, key: str, messages: list[dict[str, Any]]) -> float:
        answer = self.http.post("/v1/batch", content=orjson.dumps({"batch": messages}),
                                headers={"Authorization": basic(key),
                                         "Content-Type": "application/json"})  # fmt: skip
        answer.raise_for_status()
        return time.time()


def messages(first: int, count: int, prefix: str = "m") -> list[dict[str, Any]]:
    return [{"type": "track", "event": "Order Completed", "userId": f"user-{n % 5000}",
             "messageId": f"{prefix}-{n}", "properties": {"n": n, "total": n % 300}}
            for n in range(first, first + count)]  # fmt: skip


def load(server: Server, key: str, total: int, prefix: str = "m") -> None:
    for first in range(0, total, BATCH):
        server.post(key, messages(first, min(BATCH, total - first), prefix))


def timed_delivery(receiver: Receiver, count: int, started: float, timeout: float = 600) -> float:
    receiver.wait_for(count, timeout=timeout)
    return time.monotonic() - started


def throughput(server: Server, total: int) -> dict[str, Any]:
    with Receiver() as direct:
        client = httpx.Client(timeout=30)
        started = time.monotonic()
        for first in range(0, total, BATCH):
            client.post(direct.url, content=orjson.dumps({"batch": messages(first, BATCH)}))
        baseline = time.monotonic() - started
    with Receiver() as receiver:
        server.destination("throughput", receiver.url)
        started = time.monotonic()
        server.replay_all("throughput")
        seconds = timed_delivery(receiver, total, started)
        server.admin("POST", "/api/destinations/throughput/disable")
    return {"events": total, "tessera_events_per_s": round(total / seconds),
            "baseline_direct_post_events_per_s": round(total / baseline)}  # fmt: skip


def isolation(server: Server, total: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"alone": [], "beside": []}
    with Receiver("hang", hang_seconds=600) as hanging, Receiver("half500") as half:
        for round_, setting in enumerate(("alone", "beside", "alone", "beside")):
            others = setting == "beside"
            if others:
                server.destination(f"hang-{round_}", hanging.url, timeout_seconds=10)
                server.destination(f"half-{round_}", half.url)
            with Receiver() as receiver:
                name = f"healthy-{round_}"
                server.destination(name, receiver.url)
                started = time.monotonic()
                for other in [f"hang-{round_}", f"half-{round_}"] if others else []:
                    server.replay_all(other)
                server.replay_all(name)
                rates[setting].append(total / timed_delivery(receiver, total, started))
                server.admin("POST", f"/api/destinations/{name}/disable")
            if others:
                for other in (f"hang-{round_}", f"half-{round_}"):
                    server.admin("DELETE", f"/api/destinations/{other}")
    alone = sum(rates["alone"]) / len(rates["alone"])
    beside = sum(rates["beside"]) / len(rates["beside"])
    return {"healthy_alone_events_per_s": round(alone),
            "healthy_beside_hanging_and_failing_events_per_s": round(beside),
            "ratio": round(beside / alone, 3), "runs": rates}  # fmt: skip


def latency(server: Server, key: str, rate: int, seconds: float) -> dict[str, Any]:
    per_request = 250
    interval = per_request / rate
    acked: dict[str, float] = {}
    ack_ms: list[float] = []
    with Receiver() as receiver:
        server.destination("live", receiver.url, batch_size=200, linger_seconds=0.02)
        time.sleep(2)  # the supervisor starts the worker within a second
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            due = started + (n // per_request) * interval
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            batch = messages(n, per_request, "live")
            sent = time.time()
            done = server.post(key, batch)
            ack_ms.append((done - sent) * 1000)
            acked.update({m["messageId"]: done for m in batch})
            n += per_request
        achieved = n / (time.monotonic() - started)
        receiver.wait_for(n, timeout=300)
        first: dict[str, float] = {}
        for message, arrived in zip(receiver.received, receiver.arrivals, strict=True):
            first.setdefault(message["messageId"], arrived)
    lags = [(first[i] - acked[i]) * 1000 for i in acked]
    return {"offered_events_per_s": rate, "achieved_events_per_s": round(achieved),
            "events": n, "ack_to_webhook_p50_ms": round(percentile(lags, 0.5), 1),
            "ack_to_webhook_p99_ms": round(percentile(lags, 0.99), 1),
            "baseline_v1_ack_p99_ms": round(percentile(ack_ms, 0.99), 1)}  # fmt: skip


def faults(base: Path, total: int, kill: bool, mode: str) -> dict[str, Any]:
    server = Server(base / f"faults-{mode}-{kill}" / "data")
    try:
        key = server.source("shop")
        with Receiver(mode, hang_seconds=5) as receiver:
            server.destination("faulty", receiver.url, batch_size=100, timeout_seconds=1)
            load(server, key, total, "f")
            if kill:
                receiver.wait_for(total // 5, timeout=300)
                server.kill()
                server.restart()
            receiver.wait_for(total, timeout=900)
            time.sleep(2)  # late duplicates of batches still in flight
            ids = receiver.message_ids()
            bodies_agree = all(m["properties"]["n"] == int(m["messageId"][2:])
                               for m in receiver.received)  # fmt: skip
    finally:
        server.stop()
    counts = Counter(ids)
    expected = {f"f-{n}" for n in range(total)}
    duplicates = sum(c - 1 for c in counts.values())
    return {"receiver": mode, "kill_9": kill, "events": total,
            "lost": len(expected - set(counts)), "duplicates": duplicates,
            "duplicate_share": round(duplicates / total, 4),
            "duplicates_same_message": bodies_agree, "answers": receiver.answers}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fault-events", type=int, default=20_000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tessera-activation-"))
    try:
        server = Server(base / "main" / "data")
        try:
            key = server.source("shop")
            load(server, key, args.events)
            server.caught_up()
            tput = throughput(server, args.events)
            isolated = isolation(server, args.events)
            live = latency(server, key, args.rate, args.seconds)
        finally:
            server.stop()
        healthy = faults(base, args.fault_events, kill=False, mode="healthy")
        faulty = faults(base, args.fault_events, kill=True, mode="flaky")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    t1 = Table("Delivery throughput to a local webhook (batches of 500)",
               ["run", "events/s"])  # fmt: skip
    t1.add("Tessera: log → webhook", tput["tessera_events_per_s"])
    t1.add("baseline: this process posting the same batches directly",
           tput["baseline_direct_post_events_per_s"])  # fmt: skip
    t2 = Table("Isolation: a healthy destination's throughput", ["run", "events/s"])
    t2.add("alone", isolated["healthy_alone_events_per_s"])
    t2.add("beside one hanging and one 50%-500 destination",
           isolated["healthy_beside_hanging_and_failing_events_per_s"])  # fmt: skip
    t2.add("ratio", isolated["ratio"])
    t3 = Table(f"Latency at {args.rate:,} events/s offered (open loop, {args.seconds:g} s)",
               ["measure", "value"])  # fmt: skip
    for k in ("achieved_events_per_s", "ack_to_webhook_p50_ms", "ack_to_webhook_p99_ms",
              "baseline_v1_ack_p99_ms"):  # fmt: skip
        t3.add(k, live[k])
    t4 = Table("Correctness under faults", ["run", "events", "lost", "duplicates", "share",
                                            "same messageId"])  # fmt: skip
    for run in (healthy, faulty):
        label = f"{run['receiver']}" + (", kill -9 mid-delivery" if run["kill_9"] else "")
        t4.add(label, run["events"], run["lost"], run["duplicates"], run["duplicate_share"],
               run["duplicates_same_message"])  # fmt: skip
    emit({"throughput": tput, "isolation": isolated, "latency": live,
          "faults": [healthy, faulty]}, t1, t2, t3, t4)  # fmt: skip


if __name__ == "__main__":
    main()
