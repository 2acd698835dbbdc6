"""The collector's sink: its own log directory in DATA_DIR/log (tessera/eventlog)."""

from __future__ import annotations

from typing import Protocol

from tessera.errors import StoreUnavailable
from tessera.events.collect import Sink
from tessera.settings import Settings


class ClosableSink(Sink, Protocol):
    def close(self) -> None: ...


def open_sink(settings: Settings, writer_id: str) -> ClosableSink:
    """The log writer `writer_id` appends to, its group commit running."""
    raise StoreUnavailable(f"no event log for {writer_id} in {settings.data_dir} yet")
