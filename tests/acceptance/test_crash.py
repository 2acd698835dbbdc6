"""kill -9 in the middle of ingest: every acknowledged message is there exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson

from tests.conftest import basic_auth, start_server


def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    key = server.create_source("crash", "server")
    acknowledged: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def send(worker: int) -> None:
        with httpx.Client(timeout=5) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                ids = [f"w{worker}-{n}-{i}-{uuid.uuid4()}" for i in range(50)]
                sent.extend(ids)
                body = {
                    "batch": [
                        {"type": "track", "event": "Tick", "userId": f"u{i}", "messageId": m}
                        for i, m in enumerate(ids)
                    ]
                }
                try:
                    response = client.post(
                        f"{server.url}/v1/batch",
                        content=orjson.dumps(body),
                        headers={"Authorization": basic_auth(key)},
                    )
                except httpx.HTTPError:
                    return  # the server died under us: this batch was never acknowledged
                if response.status_code == 200:
                    acknowledged.extend(ids)

    workers = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 20_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(kill=True)  # SIGKILL: no shutdown, no checkpoint
    stop.set()
    for worker in workers:
        worker.join()
    assert len(acknowledged) >= 5_000, "the server took too little load to test anything"

    restarted = start_server(data_dir)
    try:
        # A client retries what it never saw acknowledged, with the same ids.
        stored: list[str] = []
        offset = 0
        while True:
            page = httpx.get(
                f"{restarted.url}/api/events",
                headers=restarted.admin,
                params={"limit": 1000, "after_seq": offset},
            ).json()["items"]
            if not page:
                break
            stored.extend(e["message_id"] for e in page)
            offset = max(e["seq"] for e in page)
        assert len(stored) == len(set(stored)), "a message was stored twice"
        acked = set(acknowledged)
        missing = acked - set(stored)
        assert not missing, f"{len(missing)} acknowledged messages were lost"
        unacknowledged = [m for m in sent if m not in acked][:50]
        if unacknowledged:
            retry = {
                "batch": [
                    {"type": "track", "event": "Tick", "userId": "u", "messageId": m}
                    for m in unacknowledged
                ]
            }
            response = httpx.post(
                f"{restarted.url}/v1/batch",
                content=orjson.dumps(retry),
                headers={"Authorization": basic_auth(key)},
            )
            assert response.status_code == 200
        total = restarted.stats()["events"]
        assert total == len(set(stored) | set(unacknowledged))
    finally:
        restarted.stop()
