"""The threads that work in the background give way to the one that answers requests.

One process serves requests on its event loop and runs the pipeline, the refresh of
computed traits, the decision memory and DuckDB's workers beside it. On two cores their
bursts took both, and each request waited for a core behind them: the event loop's
scheduler delay doubled under ingest, and the decisions' p99 with it (docs/personalize.md,
2026-12-03). Every thread but the event loop's is marked SCHED_BATCH (Linux; allowed
without privileges): the same share of the CPU as before (the nice value is unchanged,
unlike lowering their priority, which made a thread holding the GIL wait for a core while
the loop waited for the GIL), but a batch thread that wakes does not preempt the running
one, and the loop that wakes preempts it. Threads start at any time (DuckDB's, a
thread pool's), so they are marked every `EVERY_SECONDS`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("tessera.cpu")

EVERY_SECONDS = 2.0


class BackgroundBatch:
    """Marks every thread of this process but `loop` (a native thread id) SCHED_BATCH,
    now and every `EVERY_SECONDS` until stopped. Does nothing where the OS has no such
    policy or no /proc."""

    def __init__(self, loop: int) -> None:
        self._loop = loop
        self._tasks = Path(f"/proc/{os.getpid()}/task")
        self._stopping = threading.Event()
        self._marked: set[int] = set()
        self._thread: threading.Thread | None = None

    @staticmethod
    def supported() -> bool:
        return hasattr(os, "SCHED_BATCH") and Path("/proc/self/task").is_dir()

    def start(self) -> None:
        if not self.supported():
            return
        self._thread = threading.Thread(target=self._run, name="tessera-cpu", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def mark(self) -> int:
        """Mark the threads not marked yet; returns how many were."""
        try:
            present = {int(name) for name in os.listdir(self._tasks)}
        except OSError:
            return 0
        self._marked &= present  # an id that went may come back as another thread
        marked = 0
        for tid in sorted(present - self._marked - {self._loop}):
            try:
                os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
            except OSError:  # ended meanwhile, or refused: left as it is
                continue
            self._marked.add(tid)
            marked += 1
        return marked

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.mark()
            except Exception:  # never stop serving for this
                log.exception("could not mark background threads")
                return
            self._stopping.wait(EVERY_SECONDS)
