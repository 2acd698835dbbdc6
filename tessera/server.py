"""Running the server: in the foreground (`tessera serve`) or on a background thread
for commands that need one briefly (`tessera demo` with no server running, tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import orjson
import uvicorn

from tessera.app import create_app, open_runtime
from tessera.errors import StoreLocked, StoreUnavailable
from tessera.runtime import Runtime
from tessera.settings import Settings


def serve(settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Serve until stopped. The store is opened first, so a refusal (a short admin token,
    another server on this data directory) raises a TesseraError before anything listens;
    `ready` is called once it is open."""
    runtime = _open_for_serving(settings)
    try:
        if ready is not None:
            ready()
        uvicorn.run(
            create_app(settings, runtime),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    finally:
        runtime.close()


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
    """Serve `settings` on a free loopback port in this process; yields the base URL."""
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
