"""Reads of the event log as a person makes them: right after a 200 (docs/ingest.md, "The
log in files: what a 200 means"). An acknowledged event is in the log's files and reaches
`events` a moment later, when the core's loader has loaded it; these reads load what the
files hold first, so what was acknowledged before the read is in the answer. The admin API,
the console and the CLI call these, never `log.*` directly."""

from __future__ import annotations

from typing import Any, Protocol

from tessera.events import log
from tessera.paging import Page
from tessera.store import Store


class Loads(Protocol):
    def sync(self) -> object:
        """Load what the log's files hold now (bounded in time)."""
        ...


class LogReader(Protocol):
    """What the reads need: the store, and the loader that feeds it (the Runtime)."""

    @property
    def store(self) -> Store: ...

    @property
    def loader(self) -> Loads: ...


def stats(reader: LogReader) -> dict[str, Any]:
    reader.loader.sync()
    return log.stats(reader.store)


def tail(
    reader: LogReader,
    *,
    limit: int = 20,
    source_id: str | None = None,
    after_seq: int | None = None,
    cursor: str | None = None,
) -> Page:
    reader.loader.sync()
    return log.tail(
        reader.store, limit=limit, source_id=source_id, after_seq=after_seq, cursor=cursor
    )


def rejected(
    reader: LogReader, *, limit: int = 50, source_id: str | None = None, cursor: str | None = None
) -> Page:
    reader.loader.sync()
    return log.rejected(reader.store, limit=limit, source_id=source_id, cursor=cursor)
