"""One collector process: what `tessera serve` spawns, once per TESSERA_COLLECTORS.

`run` is the process's entry point. It takes only picklable values (the settings, where
the core listens, the listening socket the parent bound), so it works with the `spawn`
start method: nothing is inherited from the parent but what is passed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from types import FrameType

import uvicorn

from tessera import logs
from tessera.collector.app import create_collector_app
from tessera.collector.proxy import CoreProxy
from tessera.events.collect import Collector
from tessera.events.sink import LogSink
from tessera.events.source_keys import PublishedKeys
from tessera.governance.suppression import PublishedSuppression
from tessera.settings import MIB, Settings

log = logging.getLogger(__name__)

_PARENT_CHECK_S = 0.5


@dataclass(frozen=True, slots=True)
class CollectorPlan:
    """What a collector needs to start, all of it picklable."""

    settings: Settings
    index: int
    core_url: str
    core_socket: str | None  # a unix socket path, or None when core_url is a loopback URL
    parent_pid: int

    @property
    def writer_id(self) -> str:
        """The collector's own log directory name: a restarted collector takes its slot's
        directory back (the dead one no longer writes to it)."""
        return f"collector-{self.index}"


class StoppableServer(uvicorn.Server):
    """uvicorn's server, stopped by `signals` only, and without uvicorn's habit of raising
    the signal again once it has stopped: that re-raise killed the process before the
    code after `run` (closing the store or the log) could run."""

    def __init__(
        self,
        config: uvicorn.Config,
        signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
        on_signal: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self._signals = tuple(signals)
        self._on_signal = on_signal

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in self._signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_signal is None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()
        else:
            self._on_signal()


def run(plan: CollectorPlan, sockets: list[socket.socket]) -> None:
    """Serve the collect API on `sockets` until SIGTERM or until the parent is gone."""
    settings = plan.settings
    # SIGINT (Ctrl-C reaches the whole process group) is the parent's to handle: it stops
    # its collectors in order, instead of each one racing the supervisor that restarts it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(settings, plan.writer_id)
    _tune_garbage_collector()
    sink = LogSink(
        settings.log_dir,
        plan.writer_id,
        max_queued_events=settings.max_queued_events,
        retry_after_seconds=settings.retry_after_seconds,
        segment_bytes=settings.log_segment_mb * MIB,
    )
    sink.start()
    try:
        collector = Collector(
            PublishedKeys(settings.source_keys_path),
            sink,
            max_body_bytes=settings.max_body_bytes,
            max_message_bytes=settings.max_message_bytes,
            suppression=PublishedSuppression(settings.suppression_path),
        )
        proxy = CoreProxy(plan.core_url, plan.core_socket)
        config = uvicorn.Config(
            create_collector_app(settings, collector, proxy),
            log_level="warning",
            log_config=None,  # logs.configure's handler
            access_log=False,
            timeout_graceful_shutdown=10,
        )
        server = StoppableServer(config, signals=(signal.SIGTERM,))
        _exit_with_parent(plan.parent_pid, server)
        server.run(sockets=sockets)
    finally:
        sink.stop()  # what was accepted is fsync'd and answered before the files close


def _exit_with_parent(parent_pid: int, server: uvicorn.Server) -> None:
    """A collector whose `tessera serve` died (kill -9) stops too, instead of answering
    alone on the port with nobody loading its log."""

    def watch() -> None:
        while not server.should_exit:
            if os.getppid() != parent_pid:
                log.warning("the serving process %d is gone; this collector stops", parent_pid)
                server.should_exit = True
                return
            time.sleep(_PARENT_CHECK_S)

    threading.Thread(target=watch, name="tessera-parent-watch", daemon=True).start()


def _tune_garbage_collector() -> None:
    """As the core does (app.py): the collect path makes many short-lived dicts and no
    cycles, and CPython's default thresholds spent a quarter of ingest CPU in the GC."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
