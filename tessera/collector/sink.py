"""The collector's sink: its own log directory in DATA_DIR/log (tessera/eventlog)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

from tessera.errors import StoreUnavailable
from tessera.events.collect import Sink
from tessera.events.contract import EventRow
from tessera.events.writer import DeadLetter, WriteResult
from tessera.settings import Settings


class ClosableSink(Sink, Protocol):
    def close(self) -> None: ...


class _NoLog:
    """Until the event log lands: every submission is refused (503, retryable)."""

    def __init__(self, where: str) -> None:
        self._where = where

    def submit(
        self, rows: Sequence[EventRow], dead_letters: Sequence[DeadLetter] = ()
    ) -> Future[WriteResult]:
        raise StoreUnavailable(f"no event log for {self._where} yet; retry")

    def close(self) -> None:
        return


def open_sink(settings: Settings, writer_id: str) -> ClosableSink:
    """The log writer `writer_id` appends to, its group commit running."""
    return _NoLog(f"{writer_id} in {settings.data_dir}")
