"""`tessera serve` moves its loaded memory out of the cyclic collector's reach once, and
again after each reload (cpu_policy.FreezeMemory)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tessera.cpu_policy import FreezeMemory


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the objects this test froze go back to the collector


def test_memory_is_frozen_once_loaded_and_again_after_a_reload() -> None:
    memory: list[object | None] = [None]
    freeze = FreezeMemory(lambda: memory[0])
    assert not freeze.tick()  # loading: nothing yet
    first = {"profiles": [{"id": n} for n in range(1_000)]}
    memory[0] = first
    before = gc.get_freeze_count()
    assert freeze.tick()
    assert gc.get_freeze_count() >= before + 1_000  # the memory's dicts among them
    assert all(o is not first for o in gc.get_objects())  # out of every generation
    assert not freeze.tick()  # the same memory: nothing to do
    memory[0] = {"profiles": []}  # a rebuild loaded another
    assert freeze.tick()


def test_the_thread_stops() -> None:
    freeze = FreezeMemory(lambda: None)
    freeze.start()
    freeze.stop()
