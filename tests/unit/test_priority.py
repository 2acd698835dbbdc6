"""Background threads run niced (tessera/priority.py): the calling thread alone, and the
threads a niced creator starts; never the caller of `spawned_niced`."""

from __future__ import annotations

import os
import threading

import pytest

from tessera import priority

pytestmark = pytest.mark.skipif(not priority.supported(), reason="nice per thread is Linux's")


def _in_thread(work: object) -> object:
    found: dict[str, object] = {}
    thread = threading.Thread(target=lambda: found.update(value=work()))  # type: ignore[operator]
    thread.start()
    thread.join()
    return found["value"]


def test_a_thread_lowers_itself_and_no_other() -> None:
    before = priority.this_thread()

    def work() -> int:
        priority.lower_this_thread(7)
        return priority.this_thread()

    assert _in_thread(work) == max(before, 7)
    assert priority.this_thread() == before


def test_a_thread_is_never_raised_and_zero_leaves_it() -> None:
    def work() -> tuple[int, int]:
        priority.lower_this_thread(12)
        priority.lower_this_thread(5)  # would raise the priority back: refused, silently
        after_five = priority.this_thread()
        priority.lower_this_thread(0)
        return after_five, priority.this_thread()

    assert _in_thread(work) == (max(priority.this_thread(), 12),) * 2


def test_what_a_niced_creator_starts_runs_niced_and_the_caller_does_not() -> None:
    before = priority.this_thread()
    started: list[int] = []

    def create() -> threading.Thread:
        ready = threading.Event()

        def child() -> None:
            started.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            ready.set()

        thread = threading.Thread(target=child)
        thread.start()
        ready.wait(5)
        return thread

    thread = priority.spawned_niced(9, create)
    thread.join()
    assert started == [max(before, 9)]
    assert priority.this_thread() == before


def test_a_failure_of_the_creation_reaches_the_caller() -> None:
    def create() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        priority.spawned_niced(9, create)
