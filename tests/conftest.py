"""Fixtures shared by every layer: settings on a temporary data dir, a real server."""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import settings as hypothesis_settings

from tessera.runtime import Runtime
from tessera.server import free_port
from tessera.settings import Settings
from tessera.store import open_store

START_SECONDS = 120
ADMIN_TOKEN = "test-admin-token-0123456789"  # 24+ characters, as a server requires

# No per-example deadline: on a shared 2-core machine a first call (libphonenumber loading
# its metadata, DuckDB warming up) can pass 200 ms, and a timing failure is not a bug here.
# Timing is measured in benchmarks/, never asserted in tests.
hypothesis_settings.register_profile("tessera", deadline=None)
hypothesis_settings.load_profile("tessera")

#: The files that take longest (`--durations`, summed per file, 2026-12-02), run first:
#: `make test` hands whole files to its workers in collection order (`--dist loadfile
#: --no-loadscope-reorder`), so a long file never starts last and becomes the run's tail.
#: xdist's own order (most tests first) started the Spark file and the CLI files, a few long
#: tests each, near the end. A file missing here only runs later; keep the longest on top.
SLOWEST_FIRST = (
    "tests/spark/test_equivalence.py",
    "tests/api/test_destinations.py",
    "tests/api/test_cli_segments.py",
    "tests/api/test_cli.py",
    "tests/api/test_cli_paging.py",
    "tests/web/test_pages.py",
    "tests/integration/test_pipeline_invariants.py",
    "tests/integration/test_computed_incremental.py",
    "tests/fuzz/test_console_pages.py",
    "tests/api/test_access.py",
    "tests/api/test_hardening.py",
    "tests/web/test_demo_pages.py",
    "tests/api/test_segments.py",
    "tests/integration/test_pipeline_failures.py",
    "tests/api/test_fuzz.py",
    "tests/api/test_audiences.py",
    "tests/integration/test_activation.py",
    "tests/api/test_collectors.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    opened = Runtime.open(settings)
    yield opened
    opened.close()


@dataclass
class LiveServer:
    """A real `tessera serve` in a subprocess, on a free loopback port."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def create_source(self, name: str, channel: str = "web") -> str:
        response = httpx.post(
            f"{self.url}/api/sources", headers=self.admin, json={"name": name, "channel": channel}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["write_key"])

    def stats(self) -> dict[str, object]:
        result: dict[str, object] = httpx.get(f"{self.url}/api/stats", headers=self.admin).json()
        return result

    def caught_up(self, timeout: float = 20) -> None:
        """Wait until the server's pipeline has processed every stored event."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/api/pipeline", headers=self.admin).json()["lag_events"]:
            assert time.monotonic() < deadline, "the pipeline did not catch up"
            time.sleep(0.1)

    @property
    def log_path(self) -> Path:
        """The server's stderr: a file, never a pipe, so a chatty server can never block."""
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def collector_pids(self) -> list[int]:
        """The server's collector processes (its spawned children; not multiprocessing's
        resource tracker)."""
        found = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
        return found

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(15)


def start_server(data_dir: Path, **extra_env: str) -> LiveServer:
    port = free_port()
    env = {
        **os.environ,
        "TESSERA_DATA_DIR": str(data_dir),
        "TESSERA_PORT": str(port),
        "TESSERA_ADMIN_TOKEN": ADMIN_TOKEN,
        **extra_env,
    }
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    with log_path.open("ab") as log:
        # A file, not a pipe: nobody reads a pipe while the tests run, and a server that
        # logs many lines (a storm of tracebacks) would block on a full one.
        process = subprocess.Popen(
            [sys.executable, "-m", "tessera.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    # Generous: on two cores shared with other test runs, the collectors' interpreters took
    # 20-40 s to import everything (measured at a load average of 20); a server that
    # starts costs only its real start-up time.
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            stderr = log_path.read_text(errors="replace")
            raise RuntimeError(f"server exited early: {stderr}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start in {START_SECONDS} s")
        time.sleep(0.1)
    return LiveServer(url, data_dir, process, env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("server") / "data")
    yield live
    if live.process.poll() is None:
        live.stop()


def demo_copy(tmp_path_factory: pytest.TempPathFactory, people: int, seed: int) -> Path:
    """A data directory of its own holding `tessera demo --people PEOPLE --seed SEED`.

    The demo is loaded once per test run (the xdist workers share it: the first loads it,
    the others wait on a lock) and each caller gets a copy. Loading goes through the collect
    API and the whole pipeline, ~10 s of CPU for 150 people; a copy is a fraction of a
    second. The copy is what loading the demo there would have made: the demo's files
    destination is pointed at the copy's own folder, so no two servers write one folder.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # every worker's base is a folder of the run's
    template = shared / f"demo-{people}-{seed}" / "data"
    with (shared / f"demo-{people}-{seed}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = template.parent / "loaded"
        if not ready.exists():
            shutil.rmtree(template, ignore_errors=True)
            loaded = subprocess.run(
                [sys.executable, "-m", "tessera.cli", "demo", "--people", str(people),
                 "--seed", str(seed)],
                env={**os.environ, "TESSERA_DATA_DIR": str(template),
                     "TESSERA_ADMIN_TOKEN": ADMIN_TOKEN},
                capture_output=True,
                text=True,
            )  # fmt: skip
            assert loaded.returncode == 0, loaded.stderr[-3000:]
            ready.touch()
    copy = tmp_path_factory.mktemp("demo") / "data"
    shutil.copytree(template, copy, symlinks=True)
    store = open_store(copy / "tessera.duckdb")
    try:
        store.execute(
            "UPDATE destinations SET config = replace(config, ?, ?)",
            [f'"{template}/', f'"{copy}/'],
        )
    finally:
        store.close()
    return copy


def basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
