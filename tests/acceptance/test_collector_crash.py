"""kill -9 of a collector process in the middle of ingest, clients retrying what was not
acknowledged with the same messageIds: every acknowledged message is in `events` exactly
once, and so is every retried one (the log may hold a retry twice; the loader drops it)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson

from tests.conftest import LiveServer, basic_auth, start_server

SENDERS = 4
BATCH = 50


def stored_message_ids(server: LiveServer) -> list[str]:
    stored: list[str] = []
    after = 0
    while True:
        page = httpx.get(
            f"{server.url}/api/events",
            headers=server.admin,
            params={"limit": 1000, "after_seq": after},
        ).json()["items"]
        if not page:
            return stored
        stored.extend(event["message_id"] for event in page)
        after = max(event["seq"] for event in page)


def test_a_collector_killed_mid_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", TESSERA_COLLECTORS="2")
    try:
        key = server.create_source("crash", "server")
        acknowledged: list[str] = []
        retried = [0]
        stop = threading.Event()

        def send(worker: int) -> None:
            with httpx.Client(timeout=10) as client:
                for n in range(100_000):
                    if stop.is_set():
                        return
                    ids = [f"w{worker}-{n}-{i}-{uuid.uuid4().hex[:8]}" for i in range(BATCH)]
                    body = orjson.dumps(
                        {
                            "batch": [
                                {
                                    "type": "track",
                                    "event": "Tick",
                                    "userId": f"u{i}",
                                    "messageId": m,
                                }
                                for i, m in enumerate(ids)
                            ]
                        }
                    )
                    # A client retries the same batch, same ids, until it is acknowledged.
                    for _attempt in range(200):
                        try:
                            answer = client.post(
                                f"{server.url}/v1/batch",
                                content=body,
                                headers={"Authorization": basic_auth(key)},
                            )
                            if answer.status_code == 200:
                                acknowledged.extend(ids)
                                break
                        except httpx.HTTPError:
                            pass
                        retried[0] += 1
                        time.sleep(0.05)
                    else:
                        raise AssertionError("a batch was never acknowledged")

        workers = [threading.Thread(target=send, args=(w,)) for w in range(SENDERS)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 10_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = server.collector_pids()[0]
        os.kill(victim, signal.SIGKILL)  # no shutdown: whatever it was writing is torn
        after_kill = len(acknowledged)
        while len(acknowledged) < after_kill + 10_000 and time.monotonic() < deadline + 30:
            time.sleep(0.02)
        stop.set()
        for worker in workers:
            worker.join()
        assert after_kill >= 2_000, "the collectors took too little load to test anything"
        assert len(acknowledged) > after_kill, "nothing was acknowledged after the kill"

        server.caught_up(timeout=60)
        stored = stored_message_ids(server)
        assert len(stored) == len(set(stored)), "a message was stored twice"
        missing = set(acknowledged) - set(stored)
        assert not missing, f"{len(missing)} acknowledged messages were lost"
        assert set(stored) == set(acknowledged), "a message nobody sent was stored"
        assert "exited with -9; starting it again" in server.log()
    finally:
        server.stop()
