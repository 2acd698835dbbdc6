"""Running the server: in the foreground (`tessera serve`) or on a background thread
for commands that need one briefly (`tessera demo` with no server running, tests).

`tessera serve` is one core process and TESSERA_COLLECTORS collector processes (docs/
ingest.md). The core is this process: the only one with the store (the loader, the
pipeline, the admin API and the console), listening on a private socket in DATA_DIR/run.
The collectors share the public port, bound here once and handed to each: they take
/v1/* and the pixel into their logs and pass every other path to the core. This process
supervises them: one that dies is started again, and stopping the server stops them all.
With TESSERA_COLLECTORS=0 this process serves everything on the public port itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.process import BaseProcess
from pathlib import Path

import orjson
import uvicorn

from tessera import logs
from tessera.app import create_app, open_runtime
from tessera.collector import process as collector_process
from tessera.collector import proxy
from tessera.collector.process import CollectorPlan, StoppableServer
from tessera.cpu_policy import BackgroundBatch, FreezeMemory
from tessera.errors import StoreLocked, StoreUnavailable
from tessera.runtime import Runtime
from tessera.settings import Settings

log = logging.getLogger(__name__)

# A unix socket path longer than this (108 bytes with its terminator on Linux) cannot be
# bound; a data directory that deep gets a loopback port instead.
_MAX_SOCKET_PATH = 100
_RESTART_CHECK_S = 0.2


def serve(settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Serve until stopped. The store is opened first, so a refusal (a short admin token,
    another server on this data directory) raises a TesseraError before anything listens;
    `ready` is called once it is open and the port is bound."""
    logs.configure(settings, "core")
    runtime = _open_for_serving(settings)
    # This thread runs the event loop that answers requests: the others give way to it.
    background = BackgroundBatch(threading.get_native_id())
    if settings.background_sched_batch:
        background.start()
    freeze = FreezeMemory(lambda: _loaded_memory(runtime))
    freeze.start()
    try:
        public = _bind_public(settings)
        if settings.collectors == 0:
            _serve_alone(settings, runtime, public, ready)
        else:
            _serve_with_collectors(settings, runtime, public, ready)
    finally:
        freeze.stop()
        background.stop()
        runtime.close()


def _loaded_memory(runtime: Runtime) -> object | None:
    """The pipeline's memory once it and the decision memory are loaded, else None."""
    memory = runtime.pipeline.memory
    return memory if memory is not None and runtime.personalizer.loaded else None


def _serve_alone(
    settings: Settings, runtime: Runtime, public: socket.socket, ready: Callable[[], None] | None
) -> None:
    server = StoppableServer(_config(create_app(settings, runtime)))
    if ready is not None:
        ready()
    server.run(sockets=[public])


def _serve_with_collectors(
    settings: Settings, runtime: Runtime, public: socket.socket, ready: Callable[[], None] | None
) -> None:
    core, core_url, core_path = _bind_core(settings)
    runtime.sources.publish()
    plans = [
        CollectorPlan(settings, index, core_url, core_path, os.getpid())
        for index in range(settings.collectors)
    ]
    supervisor = Supervisor(plans, public)
    runtime.collector_processes = supervisor.alive
    server: StoppableServer

    def stop() -> None:
        """On SIGINT/SIGTERM: the collectors first (they finish what they accepted and may
        still be passing requests to the core), then the core."""

        def in_order() -> None:
            supervisor.stop()
            server.should_exit = True

        threading.Thread(target=in_order, name="tessera-stop", daemon=True).start()

    # The core trusts X-Forwarded-For/-Proto from its socket: only the collectors reach it.
    # Date and Server come from the collector that answers the client, once.
    config = _config(
        create_app(settings, runtime),
        forwarded_allow_ips="*",
        server_header=False,
        date_header=False,
        timeout_keep_alive=proxy.CORE_KEEP_ALIVE_S,
    )
    server = StoppableServer(config, on_signal=stop)
    supervisor.start()
    try:
        if ready is not None:
            ready()
        server.run(sockets=[core])
    finally:
        supervisor.stop()
        if core_path is not None:
            Path(core_path).unlink(missing_ok=True)


def _config(app: object, **extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="warning",
        log_config=None,  # our handler (tessera/logs.py), in the chosen format
        access_log=False,
        timeout_graceful_shutdown=10,
        **extra,  # type: ignore[arg-type]
    )


def _bind_public(settings: Settings) -> socket.socket:
    """The public port, bound once here (a port in use fails now, with its address)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as e:
        sock.close()
        raise StoreUnavailable(
            f"cannot listen on {settings.host}:{settings.port} ({e.strerror}): another program "
            "uses it; pick another with --port or TESSERA_PORT"
        ) from e
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _bind_core(settings: Settings) -> tuple[socket.socket, str, str | None]:
    """The core's private socket: DATA_DIR/run/core.sock (0600, in a 0700 directory), or a
    loopback port when that path is too long for a unix socket."""
    settings.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.run_dir, 0o700)
    path = settings.run_dir / "core.sock"
    if len(str(path.resolve())) <= _MAX_SOCKET_PATH:
        path.unlink(missing_ok=True)  # left by a server that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path.resolve()))
        os.chmod(path, 0o600)
        sock.listen(2048)
        return sock, "http://core", str(path.resolve())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}", None


class Supervisor:
    """Starts one process per plan (spawn), starts again any that exits while serving, and
    stops them all (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, plans: list[CollectorPlan], public: socket.socket) -> None:
        self._plans = plans
        self._public = public
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        with self._lock:
            self._processes = [self._spawn(plan) for plan in self._plans]
        self._thread = threading.Thread(target=self._watch, name="tessera-supervisor", daemon=True)
        self._thread.start()

    def alive(self) -> list[bool]:
        """Whether each collector process runs now (readiness and the metrics ask); no
        lock: a restart in progress reads as the old process, dead."""
        return [process.is_alive() for process in list(self._processes)]

    def pids(self) -> list[int | None]:
        return [process.pid for process in self._processes]

    def stop(self, grace_s: float = 15.0) -> None:
        if self._stopping.is_set():
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join()
            return
        self._stopping.set()
        with self._lock:
            for process in self._processes:
                with suppress(Exception):
                    process.terminate()
            deadline = time.monotonic() + grace_s
            for process in self._processes:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    log.warning("collector %s did not stop in %.0f s; killed", process.pid, grace_s)
                    process.kill()
                    process.join(5)

    def _spawn(self, plan: CollectorPlan) -> BaseProcess:
        process = self._context.Process(
            target=collector_process.run,
            args=(plan, [self._public]),
            name=f"tessera-{plan.writer_id}",
            daemon=True,
        )
        process.start()
        return process

    def _watch(self) -> None:
        while not self._stopping.wait(_RESTART_CHECK_S):
            with self._lock:
                if self._stopping.is_set():
                    return
                for slot, process in enumerate(self._processes):
                    if process.is_alive():
                        continue
                    log.warning(
                        "collector %d (process %s) exited with %s; starting it again",
                        slot, process.pid, process.exitcode,
                    )  # fmt: skip
                    self._processes[slot] = self._spawn(self._plans[slot])
                    self.restarts += 1


def _open_for_serving(settings: Settings) -> Runtime:
    try:
        return open_runtime(settings)
    except StoreLocked as e:
        raise StoreLocked(_already_served(settings)) from e


def _already_served(settings: Settings) -> str:
    """Why a second server cannot start here, naming the first when server.json says."""
    try:
        info = orjson.loads(settings.server_file_path.read_bytes())
        first = f"Tessera (process {int(info['pid'])}, {info['url']})"
    except (OSError, ValueError, KeyError, TypeError):
        first = "another process"
    return (
        f"{first} already uses the data directory {settings.data_dir}: stop it first, or "
        "give this server another TESSERA_DATA_DIR (the CLI's other commands talk to the "
        "running server by themselves)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def background_server(settings: Settings) -> Iterator[str]:
    """Serve `settings` on a free loopback port in this process; yields the base URL.

    One process, whatever TESSERA_COLLECTORS says: the caller (a test, `tessera demo`)
    lives in this process and stops the server with it."""
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
    runtime = open_runtime(settings)
    config = uvicorn.Config(
        create_app(settings, runtime),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tessera-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise StoreUnavailable("the background server did not start; see its log")
            time.sleep(0.05)
        yield f"http://{settings.host}:{settings.port}"
    finally:
        server.should_exit = True
        thread.join()
        runtime.close()
