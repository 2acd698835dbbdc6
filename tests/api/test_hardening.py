"""Hardening over real HTTP: security headers, the API documentation served locally,
odd trait keys, the sign-in limit, concurrent admin writes, and 500s that keep the
connection."""

from __future__ import annotations

import http.client
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from tessera.app import create_app
from tessera.server import free_port
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN, LiveServer, basic_auth, start_server


def signed_in(server: LiveServer) -> httpx.Client:
    client = httpx.Client(base_url=server.url)
    answer = client.post("/sign-in", data={"token": ADMIN_TOKEN, "next": "/"})
    assert answer.status_code == 303
    return client


def test_every_answer_forbids_framing_sniffing_and_foreign_code(server: LiveServer) -> None:
    console = signed_in(server)
    answers = [console.get(path) for path in ("/sign-in", "/", "/profiles", "/docs")]
    console.close()
    answers.append(httpx.get(f"{server.url}/api/health"))
    for answer in answers:
        assert answer.status_code == 200, answer.url
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_api_documentation_references_no_other_host_and_its_files_load(
    server: LiveServer,
) -> None:
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert "//" not in re.sub(r"<!--.*?-->", "", page.text).replace("http://www.w3.org", "")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        assert httpx.get(f"{server.url}{asset}").status_code == 200, asset
    assert httpx.get(f"{server.url}/redoc").status_code == 404  # it came from a CDN


def test_trait_keys_with_backslashes_are_searched_not_500(server: LiveServer) -> None:
    found = httpx.get(f"{server.url}/api/profiles", params={"trait": "a\\=x"},
                      headers=server.admin)  # fmt: skip
    assert found.status_code == 200 and found.json()["items"] == []
    console = signed_in(server)
    page = console.get("/profiles", params={"q": "a\\=x"})
    console.close()
    assert page.status_code == 200


@pytest.fixture
def failing_server(tmp_path: Path) -> Iterator[int]:
    """A real server (in this process) with one extra route that always raises."""
    app = create_app(Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN))

    @app.get("/api/always-fails")
    def always_fails() -> None:
        raise RuntimeError("a defect")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join()


def test_a_500_answers_json_and_keeps_the_connection(failing_server: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", failing_server, timeout=10)
    connection.request("GET", "/api/always-fails")
    failed = connection.getresponse()
    assert failed.status == 500
    assert orjson.loads(failed.read()) == {
        "success": False, "code": "internal", "message": "the server failed; see its log"
    }  # fmt: skip
    connection.request("GET", "/api/health")  # the same connection: it was reset before
    assert connection.getresponse().status == 200
    connection.close()


def test_wrong_tokens_are_limited_per_address_with_retry_after(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data", TESSERA_SIGN_IN_FAILURES_PER_MINUTE="3")
    try:
        wrong = [httpx.post(f"{live.url}/sign-in", data={"token": f"guess-{n}"})
                 for n in range(3)]  # fmt: skip
        assert [answer.status_code for answer in wrong] == [401, 401, 401]
        held = httpx.post(f"{live.url}/sign-in", data={"token": ADMIN_TOKEN})
        assert held.status_code == 429  # even the right token: guessing must not go on
        assert 0 < int(held.headers["retry-after"]) <= 60
        assert "Too many failed sign-ins" in held.text
        api = httpx.get(f"{live.url}/api/stats", headers=live.admin)
        assert api.status_code == 429 and api.json()["code"] == "too_many_failures"
        assert int(api.headers["retry-after"]) > 0
    finally:
        live.stop()


def test_admin_api_guesses_count_towards_the_limit(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data", TESSERA_SIGN_IN_FAILURES_PER_MINUTE="2")
    try:
        for _ in range(2):
            guess = httpx.get(f"{live.url}/api/stats", headers={"Authorization": "Bearer guess"})
            assert guess.status_code == 401
        assert httpx.get(f"{live.url}/api/stats", headers=live.admin).status_code == 429
        assert httpx.post(f"{live.url}/sign-in", data={"token": "x"}).status_code == 429
    finally:
        live.stop()


def serve(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`tessera serve` expected to refuse to start: its exit and what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli", "serve", "--port", str(free_port())],
        env={**os.environ, "TESSERA_DATA_DIR": str(data_dir), "TESSERA_ADMIN_TOKEN": ADMIN_TOKEN,
             **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_short_admin_token_is_refused_at_start_with_one_clear_line(tmp_path: Path) -> None:
    refused = serve(tmp_path / "data", TESSERA_ADMIN_TOKEN="hunter2hunter2")
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())  # rich wraps long lines
    assert "TESSERA_ADMIN_TOKEN is 14 characters; it must be at least 24" in said
    assert "Traceback" not in refused.stderr and "hunter2" not in refused.stderr


def test_a_second_server_on_one_data_directory_says_why_without_a_traceback(
    server: LiveServer,
) -> None:
    refused = serve(server.data_dir)
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())
    assert f"process {server.process.pid}, {server.url}) already uses the data directory" in said
    assert "Traceback" not in refused.stderr and "Tessera on http" not in refused.stderr
    assert httpx.get(f"{server.url}/api/health").status_code == 200


def modes(folder: Path) -> dict[str, str]:
    """Every path under `folder` (and itself) with its permission bits, e.g. '0o600'."""
    found = {".": oct(stat.S_IMODE(folder.stat().st_mode))}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def test_the_data_directory_and_every_file_in_it_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    previous = os.umask(0o022)  # a typical login umask: without care, files come out 0644
    try:
        live = start_server(data, TESSERA_ADMIN_TOKEN=ADMIN_TOKEN)
    finally:
        os.umask(previous)
    try:
        key = live.create_source("modes-crm", "crm")
        event = {"type": "identify", "userId": "u1", "messageId": "m1"}
        sent = httpx.post(f"{live.url}/v1/identify", content=orjson.dumps(event),
                          headers={"Authorization": basic_auth(key)})  # fmt: skip
        assert sent.status_code == 200
        upload = httpx.post(
            f"{live.url}/api/imports", headers=live.admin,
            data={"source": "modes-crm", "mapping": "type: identify\nidentifiers: {email: email}"},
            files={"file": ("crm.csv", b"email,name\nann@example.com,Ann\n,Nobody\n")},
        )  # fmt: skip
        assert upload.status_code == 200, upload.text
        assert upload.json()["reject_file"]
        found = modes(data)
    finally:
        live.stop()
    assert {"tessera.duckdb", "tessera.duckdb.wal", "server.json", "rejects"} <= set(found)
    assert any(name.startswith("rejects/") for name in found), found
    loose = {name: mode for name, mode in found.items()
             if mode != ("0o700" if (data / name).is_dir() else "0o600")}  # fmt: skip
    assert not loose, loose


def test_an_older_installs_open_data_directory_is_closed_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    first.stop()
    os.chmod(data, 0o755)
    os.chmod(data / "tessera.duckdb", 0o644)
    again = start_server(data)
    try:
        assert modes(data)["."] == "0o700"
        assert modes(data)["tessera.duckdb"] == "0o600"
    finally:
        again.stop()


def test_concurrent_admin_writes_to_one_source_all_succeed(server: LiveServer) -> None:
    server.create_source("race-web", "web")
    actions = ["enable", "disable", "rotate-key"]

    def write(n: int) -> int:
        path = f"{server.url}/api/sources/race-web/{actions[n % 3]}"
        return httpx.post(path, headers=server.admin, timeout=60).status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(write, range(120)))
    assert statuses == [200] * 120


def test_simultaneous_creates_of_one_name_are_one_201_and_409s(server: LiveServer) -> None:
    def create(n: int) -> int:
        kind = n % 2
        url = f"{server.url}/api/segments" if kind else f"{server.url}/api/sources"
        body = {"name": "same-name", "query": "has user_id"} if kind else {
            "name": "same-name", "channel": "web"}  # fmt: skip
        return httpx.post(url, headers=server.admin, json=body, timeout=60).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(create, range(60)))
    assert sorted(statuses) == [201, 201] + [409] * 58


def test_the_server_sets_the_switch_interval_it_is_given(tmp_path: Path) -> None:
    """TESSERA_SWITCH_INTERVAL_MS reaches the interpreter when the server starts (requests
    wait less for the GIL while the pipeline computes: docs/personalize.md)."""
    from tessera.server import background_server

    before = sys.getswitchinterval()
    settings = Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN,
                        switch_interval_ms=2.5)  # fmt: skip
    try:
        with background_server(settings) as url:
            assert httpx.get(f"{url}/api/health").status_code == 200
            assert sys.getswitchinterval() == pytest.approx(0.0025)
    finally:
        sys.setswitchinterval(before)
