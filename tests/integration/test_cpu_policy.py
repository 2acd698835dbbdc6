"""`tessera serve` marks every thread of its core process but the event loop's SCHED_BATCH
(cpu_policy.py), on a real server; `TESSERA_BACKGROUND_SCHED_BATCH=false` leaves them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import start_server

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH") or not Path("/proc/self/task").is_dir(),
    reason="SCHED_BATCH and /proc are Linux's",
)


def _policies(pid: int) -> dict[int, int]:
    found = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            found[int(name)] = os.sched_getscheduler(int(name))
        except OSError:  # ended meanwhile
            continue
    return found


def _settled(pid: int, want: int) -> dict[int, int]:
    """The threads' policies once every thread but the main one has `want` (or 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        policies = _policies(pid)
        others = [p for tid, p in policies.items() if tid != pid]
        if (others and all(p == want for p in others)) or time.monotonic() > deadline:
            return policies
        time.sleep(0.1)


def test_background_threads_give_way_to_the_event_loop(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data", TESSERA_COLLECTORS="0")
    try:
        live.caught_up()
        policies = _settled(live.process.pid, os.SCHED_BATCH)
        assert policies.pop(live.process.pid) == os.SCHED_OTHER  # the event loop's thread
        assert len(policies) >= 4  # the pipeline, the loader, DuckDB's workers, ...
        assert set(policies.values()) == {os.SCHED_BATCH}
    finally:
        live.stop()


def test_the_setting_leaves_every_thread_as_it_was(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data", TESSERA_COLLECTORS="0",
                        TESSERA_BACKGROUND_SCHED_BATCH="false")  # fmt: skip
    try:
        live.caught_up()
        time.sleep(3)  # longer than the marking's period
        assert set(_policies(live.process.pid).values()) == {os.SCHED_OTHER}
    finally:
        live.stop()
