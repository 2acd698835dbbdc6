"""What an operator relies on, against one real `tessera serve` (two collector processes,
JSON logs at debug level): health probes, the metrics moving with events, a backup
taken under ingest load that restores every acknowledged event, and a log that holds
none of the e-mails and phones the server was sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import phonenumbers
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tessera.demo import generator
from tessera.errors import Conflict
from tessera.operations import backup
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN, LiveServer, basic_auth, start_server

pytestmark = pytest.mark.slow

METRICS_TOKEN = "metrics-reader-token-0123456789"
COMPANY = generator.generate(people=25, seed=11)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("operations") / "data",
        TESSERA_LOG_FORMAT="json",
        TESSERA_LOG_LEVEL="debug",
        TESSERA_METRICS_TOKEN=METRICS_TOKEN,
    )
    try:
        yield server
    finally:
        server.stop()


def _samples(live: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _tessera(live: LiveServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli", *args],
        env={**live.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _said(done: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, with the terminal's line wrapping undone."""
    return " ".join((done.stdout + done.stderr).split())


def test_the_probes_answer_as_orchestrators_expect(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{live.url}/readyz")
    assert ready.status_code == 200, ready.text
    checks = {check["name"]: check for check in ready.json()["checks"]}
    assert set(checks) == {"store", "pipeline", "collectors"}
    assert checks["collectors"]["detail"] == "2 of 2 up"
    assert ready.headers["x-request-id"]


def test_metrics_need_a_token_and_move_when_events_arrive(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/metrics").status_code == 401
    wrong = {"Authorization": "Bearer not-the-metrics-token"}
    assert httpx.get(f"{live.url}/metrics", headers=wrong).status_code == 401
    assert httpx.get(f"{live.url}/metrics", headers=live.admin).status_code == 200
    key = live.create_source("metered", "web")
    before = _samples(live)
    source = (("source", "metered"),)
    assert before.get(("tessera_events_accepted_total", source), 0.0) == 0.0

    batch = [{"type": "track", "event": "Viewed", "userId": f"u{i}", "messageId": f"m{i}"}
             for i in range(3)]  # fmt: skip
    batch.append(dict(batch[0]))  # a retry: same messageId
    batch.append({"type": "track", "userId": "u9", "messageId": "bad"})  # no event name
    sent = httpx.post(f"{live.url}/v1/batch", json={"batch": batch},
                      headers={"Authorization": basic_auth(key)})  # fmt: skip
    assert sent.status_code == 200, sent.text
    live.caught_up()
    after = _samples(live)
    assert after[("tessera_events_accepted_total", source)] == 3
    assert after[("tessera_events_duplicate_total", source)] == 1
    assert after[("tessera_events_rejected_total", source)] == 1
    count = ("tessera_ingest_latency_seconds_count", ())
    assert after[count] >= before.get(count, 0) + 3
    batches = ("tessera_pipeline_step_seconds_count", (("step", "batch"),))
    assert after[batches] > before.get(batches, 0)
    assert after[("tessera_pipeline_lag_events", ())] == 0
    assert after[("tessera_collector_processes", (("state", "up"),))] == 2
    for hook in ("tessera_decision_latency_seconds_count", "tessera_pipeline_lag_seconds"):
        assert (hook, ()) in after


def test_a_backup_under_ingest_load_restores_every_acknowledged_event(
    live: LiveServer, tmp_path: Path
) -> None:
    key = live.create_source("busy", "server")
    acked: list[str] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=live.url, auth=(key, ""), timeout=30) as client:
            while not stop.is_set():
                ids = [uuid.uuid4().hex for _ in range(50)]
                batch = [{"type": "track", "event": "Tick", "anonymousId": "a1", "messageId": i}
                         for i in ids]  # fmt: skip
                if client.post("/v1/batch", json={"batch": batch}).status_code == 200:
                    acked.extend(ids)

    senders = [threading.Thread(target=send) for _ in range(2)]
    for sender in senders:
        sender.start()
    try:
        while len(acked) < 1000:
            time.sleep(0.05)
        before_backup = set(acked)
        taken = _tessera(live, "backup", "--to", str(tmp_path / "backup"), "--json")
        assert taken.returncode == 0, taken.stderr
        time.sleep(0.2)
    finally:
        stop.set()
        for sender in senders:
            sender.join()
    manifest = json.loads(taken.stdout)
    assert manifest["log_files"] >= 1 and manifest["database_bytes"] > 0
    assert (tmp_path / "backup" / "backup.json").exists()
    refused = _tessera(live, "backup", "--to", str(tmp_path / "backup"))
    assert refused.returncode != 0 and "not empty" in _said(refused)

    restored_dir = tmp_path / "restored"
    restored = _tessera(live, "restore", str(tmp_path / "backup"),
                        TESSERA_DATA_DIR=str(restored_dir))  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    with pytest.raises(Conflict, match="--replace"):
        backup.restore(tmp_path / "backup", Settings(data_dir=restored_dir))

    runtime = Runtime.open(Settings(data_dir=restored_dir, admin_token=ADMIN_TOKEN))
    try:  # opening loads what the restored log holds past the restored store
        rows = runtime.store.fetch_all(
            "SELECT e.message_id FROM events e JOIN sources s ON s.id = e.source_id "
            "WHERE s.name = 'busy'"
        )
    finally:
        runtime.close()
    found = {row[0] for row in rows}
    assert before_backup <= found, f"{len(before_backup - found)} acknowledged events lost"
    assert found <= set(acked)


def test_the_json_log_has_request_ids_and_no_personal_data(live: LiveServer) -> None:
    """Demo people's messages in, their profiles looked up by e-mail, a miss by e-mail;
    then no e-mail and no phone (as sent, or as E.164) anywhere in the log."""
    keys = {name: live.create_source(f"demo-{name}", "web") for name in COMPANY.messages}
    for name, messages in COMPANY.messages.items():
        for start in range(0, len(messages), 200):
            sent = httpx.post(f"{live.url}/v1/batch", json={"batch": messages[start:start + 200]},
                              headers={"Authorization": basic_auth(keys[name])})  # fmt: skip
            assert sent.status_code == 200, sent.text
    live.caught_up(60)
    emails = [p.email for p in COMPANY.people if p.email]
    phones = [p.phone for p in COMPANY.people if p.phone]
    for email in emails[:5]:
        httpx.get(f"{live.url}/api/profiles/email:{email}", headers=live.admin)
        httpx.get(f"{live.url}/api/profiles", params={"identifier": email}, headers=live.admin)
    missing = httpx.get(f"{live.url}/api/profiles/email:nobody.here@example.org",
                        headers={**live.admin, "X-Request-ID": "trace-me-42"})  # fmt: skip
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "trace-me-42"
    httpx.get(f"{live.url}/nobody.here@example.org")
    time.sleep(0.5)  # the access lines of the last requests

    text = live.log()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines, text[-2000:]
    assert any(line.get("request_id") == "trace-me-42" for line in lines)
    assert all("request_id" in line for line in lines if line["logger"] == "tessera.access")
    secrets = {*emails, "nobody.here@example.org"}
    for phone in phones:
        secrets.add(phone)
        number = phonenumbers.parse(phone, None if phone.startswith("+") else "FR")
        secrets.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    leaked = sorted(secret for secret in secrets if secret.lower() in text.lower())
    assert not leaked, f"in the server's log: {leaked[:5]}"
    assert os.path.getsize(live.log_path) > 0
