"""Background work yields the CPU to requests.

The core process answers requests on its event loop while threads beside it compute for
seconds at a time: the whole-population refresh of computed traits, the decision memory's
refresh, retention, and DuckDB's own worker threads running their SQL. On a machine with
few cores they all want the same cores, and a request waited behind them (a decision's
p99 under ingest was the length of a refresh: docs/personalize.md). Linux schedules each
thread by its own nice value, so those threads run niced (`TESSERA_BACKGROUND_NICE`, 10 by
default): they still get every cycle the requests leave, and give a core back as soon as
a request wants one. The pipeline's batches are not among them: they are what keeps
profiles fresh (pipeline/loop.py already paces them beside ingest).

Niceness belongs to a thread on Linux, and a thread starts with its creator's: DuckDB's
workers are started when the database opens, so `spawned_niced` opens it from a short
thread niced first. Elsewhere (macOS, Windows) the same call would renice the whole
process, so these functions do nothing there.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: the highest nice value Linux has
LOWEST = 19


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "setpriority")


def lower_this_thread(nice: int) -> None:
    """Run the calling thread at `nice` (never higher in priority than it already runs:
    raising it back needs privileges). A refusal is not an error: the work runs anyway."""
    if nice <= 0 or not supported():
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, max(current, min(nice, LOWEST)))
    except OSError:
        pass


def this_thread() -> int:
    """The calling thread's nice value (0 where threads have none of their own)."""
    if not supported():
        return 0
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def spawned_niced(nice: int, create: Callable[[], T]) -> T:
    """`create()` called from a thread running at `nice`, so the threads it starts (and
    keeps: a database's workers) run at `nice` too; its result or its exception."""
    if nice <= 0 or not supported():
        return create()
    outcome: dict[str, object] = {}

    def run() -> None:
        lower_this_thread(nice)
        try:
            outcome["value"] = create()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="tessera-spawn-niced")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
