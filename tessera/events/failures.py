"""The pipeline's dead letters: events of the log that identity or profiles could not process.

An event lands here when it makes the pipeline fail on its own (the pipeline isolates it
from its batch, see `pipeline/isolation.py`). It stays in the log; the pipeline and a
rebuild skip it, so incremental processing and a rebuild still agree, until
`replay-failed` lets it in again.
Reading and writing the `pipeline_failures` table; `describe` is pure.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tessera.events.timestamps import iso_utc
from tessera.results import Result
from tessera.store import Store

#: an exception's message is kept to this length (it is for the person fixing the cause)
_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Failure:
    """What went wrong with one event: the exception's type, message and innermost frame."""

    error_type: str
    message: str
    location: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"error_type": self.error_type, "error": self.message, "location": self.location}


def describe(error: BaseException) -> Failure:
    """The failure of `error`: type, message (cut to 500 characters) and where it was
    raised (`file:line in function`, from our code when the traceback passes through it)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/tessera/" in f.filename.replace("\\", "/")] or frames
    location = None
    if ours:
        frame = ours[-1]
        path = frame.filename.replace("\\", "/")
        short = path[path.rfind("/tessera/") + 1 :] if "/tessera/" in path else path
        location = f"{short}:{frame.lineno} in {frame.name}"
    message = str(error) or repr(error)
    return Failure(type(error).__name__, message[:_MESSAGE_CHARS], location)


def record(store: Store, seq: int, failure: Failure, attempts: int, now: datetime) -> None:
    """Dead-letter one event (again: a later failure replaces the earlier record). Run it
    in the transaction that moves the pipeline past the event."""
    store.execute(
        "INSERT OR REPLACE INTO pipeline_failures VALUES (?, ?, ?, ?, ?, ?)",
        [seq, now, attempts, failure.error_type, failure.message, failure.location],
    )


def skipped(store: Store) -> set[int]:
    """The seqs the pipeline must step over."""
    return {row[0] for row in store.fetch_all("SELECT seq FROM pipeline_failures")}


def count(store: Store) -> int:
    """Dead-lettered events still in the log (a purge or erasure may have removed some)."""
    row = store.fetch_one(
        "SELECT count(*) FROM pipeline_failures f WHERE EXISTS "
        "(SELECT 1 FROM events e WHERE e.seq = f.seq)"
    )
    return int(row[0]) if row else 0


class FailedEvent(Result):
    """An event in the pipeline's dead letters: when and why it failed, and which event
    (source, type, name, messageId; not its content)."""

    seq: int
    failed_at: str | None
    attempts: int
    error_type: str
    error: str
    location: str | None
    source: str | None
    type: str
    event: str | None
    message_id: str | None
    received_at: str | None


def listing(store: Store, *, limit: int = 50) -> list[FailedEvent]:
    """The dead-lettered events, newest failure first, with the event's source, type,
    name and messageId (not its content: `tessera events tail` shows that)."""
    rows = store.fetch_dicts(
        "SELECT f.seq, f.failed_at, f.attempts, f.error_type, f.error, f.location, "
        "s.name AS source, e.type, e.event, e.message_id, e.received_at "
        "FROM pipeline_failures f JOIN events e ON e.seq = f.seq "
        "LEFT JOIN sources s ON s.id = e.source_id ORDER BY f.failed_at DESC, f.seq DESC LIMIT ?",
        [limit],
    )
    for row in rows:
        for column in ("failed_at", "received_at"):
            row[column] = iso_utc(row[column])
    return [FailedEvent(**row) for row in rows]


def release(store: Store) -> list[int]:
    """Forget every dead letter (their events are processed again by the next rebuild);
    returns their seqs."""
    seqs = sorted(skipped(store))
    store.execute("DELETE FROM pipeline_failures")
    return seqs
