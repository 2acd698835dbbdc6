"""`tessera serve` with collector processes: they own the port, take events into their logs,
and pass every other path to the core; the serving process supervises them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer, basic_auth, start_server

COLLECTORS = 2


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("collected") / "data", TESSERA_COLLECTORS=str(COLLECTORS)
    )
    yield live
    if live.process.poll() is None:
        live.stop()


def wait_until(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_serve_starts_the_collectors_it_is_told_to(collected: LiveServer) -> None:
    assert len(collected.collector_pids()) == COLLECTORS


def test_the_admin_api_answers_through_the_collectors(collected: LiveServer) -> None:
    created = httpx.post(
        f"{collected.url}/api/sources",
        headers=collected.admin,
        json={"name": "through-proxy", "channel": "web"},
    )
    assert created.status_code == 201
    assert created.json()["write_key"].startswith("tsk_")
    listed = httpx.get(f"{collected.url}/api/sources", headers=collected.admin)
    assert "through-proxy" in listed.text
    assert len(listed.headers.get_list("date")) == 1, "one Date header, not one per hop"


def test_the_core_refusals_pass_through_with_status_and_body(collected: LiveServer) -> None:
    unauthorised = httpx.get(f"{collected.url}/api/sources")
    assert unauthorised.status_code == 401
    assert unauthorised.json()["success"] is False
    missing = httpx.get(f"{collected.url}/api/no-such-thing", headers=collected.admin)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert "/api/no-such-thing" in missing.json()["message"]
    wrong_method = httpx.get(f"{collected.url}/v1/batch")
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]
    invalid = httpx.post(
        f"{collected.url}/api/sources",
        headers=collected.admin,
        json={"name": "Not A Name", "channel": "web"},
    )
    assert invalid.status_code == 400
    assert "'Not A Name'" in invalid.json()["message"]


def test_the_console_signs_in_through_the_collectors(collected: LiveServer) -> None:
    with httpx.Client(base_url=collected.url, follow_redirects=False) as browser:
        first = browser.get("/")
        assert first.status_code == 303
        assert first.headers["location"] == "/sign-in?next=/"
        refused = browser.post("/sign-in", data={"token": "not-the-token", "next": "/"})
        assert refused.status_code == 401
        assert "That is not the admin token." in refused.text
        signed_in = browser.post("/sign-in", data={"token": ADMIN_TOKEN, "next": "/sources"})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/sources"
        assert "httponly" in signed_in.headers["set-cookie"].lower()
        page = browser.get("/sources")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
    with httpx.Client(base_url=collected.url, follow_redirects=False) as stranger:
        for _ in range(4 * COLLECTORS):  # every collector: none may lend a session
            assert stranger.get("/sources").status_code == 303


def test_a_write_key_created_or_disabled_through_the_api_reaches_the_collectors(
    collected: LiveServer,
) -> None:
    key = collected.create_source("fresh-key", "server")
    track = {"type": "track", "event": "Key Tried", "userId": "u-key"}

    def status() -> int:
        answer = httpx.post(
            f"{collected.url}/v1/track", json=track, headers={"Authorization": basic_auth(key)}
        )
        return answer.status_code

    # Every collector must know it: ask more times than there are collectors.
    wait_until(lambda: all(status() == 200 for _ in range(4 * COLLECTORS)), "key never worked")
    disabled = httpx.post(f"{collected.url}/api/sources/fresh-key/disable", headers=collected.admin)
    assert disabled.status_code == 200
    wait_until(lambda: all(status() == 403 for _ in range(4 * COLLECTORS)), "key kept working")


def test_a_collector_killed_is_started_again(collected: LiveServer) -> None:
    before = collected.collector_pids()
    os.kill(before[0], signal.SIGKILL)
    wait_until(
        lambda: len(pids := collected.collector_pids()) == COLLECTORS and before[0] not in pids,
        "the killed collector was not replaced",
    )
    assert "exited with -9; starting it again" in collected.log()
    assert httpx.get(f"{collected.url}/api/health").status_code == 200


def test_stopping_serve_stops_its_collectors(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", TESSERA_COLLECTORS="1")
    children = server.collector_pids()
    server.stop()
    assert server.process.returncode == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert not (tmp_path / "data" / "server.json").exists()


def test_collectors_stop_when_the_serving_process_is_killed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", TESSERA_COLLECTORS="1")
    children = server.collector_pids()
    server.stop(kill=True)
    wait_until(
        lambda: all(not Path(f"/proc/{pid}").exists() or _is_zombie(pid) for pid in children),
        "a collector outlived the serving process",
    )
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/api/health", timeout=2)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_serve_without_collectors_serves_everything_itself(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", TESSERA_COLLECTORS="0")
    try:
        assert server.collector_pids() == []
        key = server.create_source("alone", "server")
        identify = {"type": "identify", "userId": "u-alone", "traits": {"email": "a@alone.test"}}
        sent = httpx.post(
            f"{server.url}/v1/identify", json=identify, headers={"Authorization": basic_auth(key)}
        )
        assert sent.status_code == 200
        server.caught_up()
        profile = httpx.get(f"{server.url}/api/profiles/email:a@alone.test", headers=server.admin)
        assert profile.status_code == 200
        assert not (tmp_path / "data" / "run" / "core.sock").exists()
    finally:
        server.stop()


def test_a_path_with_an_encoded_newline_is_the_cores_to_answer(collected: LiveServer) -> None:
    answer = httpx.get(f"{collected.url}/api/segments/x/why/a%0Ab", headers=collected.admin)
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
