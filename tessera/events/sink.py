"""Where the collect path hands accepted events: the sink, and the log in files behind it.

`Collector` (collect.py) submits each request's rows and dead letters to a `Sink` and
answers once the future resolves. `LogSink` appends them to this process's own segment
files in the event log (tessera/eventlog) and resolves after the fsync: a 200 means "in
the log on disk", and the core process loads the log into DuckDB (loader.py). The log
may then hold a client's retry twice; the loader drops the second copy, so the sink
cannot count duplicates: its `WriteResult.duplicates` is always 0.

This module imports no database: a collector process needs only it and the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tessera.eventlog import LogWriter
from tessera.events.contract import EventRow, Rejection


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejection with where and when it arrived."""

    source_id: str | None
    received_at: int
    rejection: Rejection

    def log_row(self) -> tuple[object, ...]:
        """The row as the log's rejected frame holds it (LOG_REJECTED_SCHEMA)."""
        rejection = self.rejection
        return (
            self.source_id,
            self.received_at,
            rejection.code,
            rejection.field,
            rejection.reason,
            rejection.message_id,
            rejection.payload,
        )


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What became of a submission: events kept, duplicates dropped, messages rejected.

    From the log (LogSink) `accepted` counts the events appended and `duplicates` is 0:
    duplicates are dropped when the log is loaded, after the answer."""

    accepted: int
    duplicates: int
    rejected: int


class Sink(Protocol):
    """What the collect path submits to: the log (LogSink), or any writer that resolves
    the future only once the rows are durable."""

    def submit(
        self, rows: Sequence[EventRow], dead_letters: Sequence[DeadLetter] = ()
    ) -> Future[WriteResult]: ...


class LogSink:
    """This process's end of the event log (one writer id, its own segment files).

    Args:
        log_dir: the log's directory (`<data_dir>/log`); the files go in
            `<log_dir>/<writer_id>/`.
        writer_id: unique per process writing the log (`serve`, `collector-1`...).

    `on_durable`, when set, is called after each submission is on disk (the loader's
    `wake`, when the loader runs in the same process).
    """

    def __init__(
        self,
        log_dir: Path,
        writer_id: str,
        *,
        max_queued_events: int,
        retry_after_seconds: int,
        segment_bytes: int | None = None,
    ) -> None:
        extra = {} if segment_bytes is None else {"segment_bytes": segment_bytes}
        self.log = LogWriter(
            log_dir,
            writer_id,
            max_queued_events=max_queued_events,
            retry_after_seconds=retry_after_seconds,
            **extra,
        )
        self.on_durable: Callable[[], None] | None = None

    def start(self) -> None:
        self.log.start()

    def stop(self) -> None:
        """Write what is queued, then close the files."""
        self.log.stop()

    def submit(
        self, rows: Sequence[EventRow], dead_letters: Sequence[DeadLetter] = ()
    ) -> Future[WriteResult]:
        """Append to the log; the future resolves after the fsync.

        Raises Overloaded (429) when too many events wait for the disk; the future fails
        with LogFull (507) or StoreUnavailable (503) when the append fails.
        """
        appended = self.log.append(rows, [letter.log_row() for letter in dead_letters])
        result = WriteResult(len(rows), 0, len(dead_letters))
        answer: Future[WriteResult] = Future()

        def resolve(done: Future[None]) -> None:
            error = done.exception()
            if error is not None:
                answer.set_exception(error)
            else:
                if self.on_durable is not None:
                    self.on_durable()
                answer.set_result(result)

        appended.add_done_callback(resolve)
        return answer

    @property
    def queued_events(self) -> int:
        return self.log.queued_events
