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

The cyclic garbage collector stops every thread while it traverses a generation: once the
memory is loaded, `FreezeMemory` takes it out of the collector's reach.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("tessera.cpu")

EVERY_SECONDS = 2.0


class _Every:
    """A daemon thread that calls `tick` now and every `EVERY_SECONDS` until stopped; a
    tick that raises is logged and ends it (never serving)."""

    name = "tessera-cpu"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def tick(self) -> object:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("%s stopped", self.name)
                return
            self._stopping.wait(EVERY_SECONDS)


class BackgroundBatch(_Every):
    """Marks every thread of this process but `loop` (a native thread id) SCHED_BATCH,
    now and every `EVERY_SECONDS` until stopped. Does nothing where the OS has no such
    policy or no /proc."""

    def __init__(self, loop: int) -> None:
        super().__init__()
        self._loop = loop
        self._tasks = Path(f"/proc/{os.getpid()}/task")
        self._marked: set[int] = set()

    @staticmethod
    def supported() -> bool:
        return hasattr(os, "SCHED_BATCH") and Path("/proc/self/task").is_dir()

    def start(self) -> None:
        if self.supported():
            super().start()

    def tick(self) -> int:
        return self.mark()

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


class FreezeMemory(_Every):
    """Moves the objects alive once the process's memory is loaded (the identity graph,
    profile summaries, aggregates, the decision memory: millions of objects that live as
    long as the process) to the collector's permanent generation, so that a cyclic
    collection no longer traverses them: a collection of the oldest generation took ~1 s
    over them, with the GIL held, and requests waited (docs/personalize.md, 2026-12-03,
    night). `memory()` gives the current memory object, or None while it loads; every new
    one (a rebuild or an erasure reloads it) is frozen once loaded. Frozen objects are
    still freed when nothing refers to them; only garbage in reference cycles among them
    is never collected (what the process held when it froze: bounded, once per load)."""

    name = "tessera-gc"

    def __init__(self, memory: Callable[[], object | None]) -> None:
        super().__init__()
        self._memory = memory
        self._frozen: object | None = None

    def tick(self) -> bool:
        """Freeze if a memory was loaded since the last freeze; True when it froze."""
        memory = self._memory()
        if memory is None or memory is self._frozen:
            return False
        gc.freeze()
        self._frozen = memory
        return True
