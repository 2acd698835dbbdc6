"""Appending to one writer's segment files, with group commit.

Many threads `append` at once; one thread writes whatever is queued as one record (an
events frame and a rejected frame), calls fdatasync once for all of it, and only then
resolves every waiting future. So an acknowledgement always means "on disk", and the
cost of a sync is shared by every request that arrived while the previous one ran
(ARCHITECTURE §3, group commit). Each process writes only its own directory, which a
lock file keeps to one process: no locks are shared between processes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from tessera.errors import InvalidField, LogFull, Overloaded, StoreLocked, StoreUnavailable
from tessera.eventlog import records, scrub, segments

log = logging.getLogger(__name__)

Row = Sequence[object]
#: the default size at which a segment is sealed and the next one begun
SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class _Pending:
    events: Sequence[Row]
    rejected: Sequence[Row]
    future: Future[None] = field(default_factory=Future)


class LogWriter:
    """One writer's end of the log: `append`, then wait for the future (after `start`)."""

    def __init__(
        self,
        log_dir: Path,
        writer_id: str,
        *,
        max_queued_events: int,
        retry_after_seconds: int,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if not segments.valid_writer_id(writer_id):
            raise InvalidField(
                f"writer id {writer_id!r} must be 1 to 64 lower-case letters, digits, '-' or '_'",
                field="writer_id",
            )
        self.writer_id = writer_id
        self.directory = log_dir / writer_id
        self._segment_bytes = segment_bytes
        self._max_queued = max_queued_events
        self._retry_after = retry_after_seconds
        self._queue: deque[_Pending] = deque()
        self._queued_events = 0
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = _take_lock(log_dir, self.directory)
        #: torn tails cut from a segment at open (a crash in the middle of a write)
        self.torn_tails_cut = 0
        self.torn_bytes_cut = 0
        self.syncs = 0
        self._descriptor: int | None = None
        self._segment = 0
        self._size = 0
        self._recover()

    # -- public -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"tessera-log-{self.writer_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread and close the files."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._queue:  # never started: write what was queued all the same
            self._write_group(list(self._queue))
            self._queue.clear()
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
        if self._lock >= 0:  # a second stop is a no-op
            os.close(self._lock)
            self._lock = -1

    def append(self, events: Sequence[Row], rejected: Sequence[Row] = ()) -> Future[None]:
        """Queue rows for the next group commit; the future resolves after the fsync.

        `events` are tuples in LOG_EVENT_SCHEMA's order, `rejected` in
        LOG_REJECTED_SCHEMA's. Raises Overloaded (HTTP 429) when the queue is full; one
        request is always admitted into an empty queue. The future fails with LogFull
        (507) when the disk is full and StoreUnavailable (503) for other write errors.
        """
        pending = _Pending(events, rejected)
        with self._condition:
            if self._stopping:
                raise StoreUnavailable("the server is shutting down; retry shortly")
            if self._queued_events and self._queued_events + len(events) > self._max_queued:
                raise Overloaded(
                    f"{self._queued_events} events are waiting to be written; "
                    f"retry after {self._retry_after} s",
                    retry_after=self._retry_after,
                )
            self._queue.append(pending)
            self._queued_events += len(events)
            self._condition.notify()
        return pending.future

    def write(self, events: Sequence[Row], rejected: Sequence[Row] = ()) -> None:
        """Append and wait: works with or without the thread."""
        if self._thread is None:
            pending = _Pending(events, rejected)
            self._write_group([pending])
            pending.future.result()
            return
        self.append(events, rejected).result()

    @property
    def queued_events(self) -> int:
        return self._queued_events

    @property
    def segment(self) -> int:
        """The number of the segment being appended to."""
        return self._segment

    # -- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if not self._queue and self._stopping:
                    return
                group = list(self._queue)
                self._queue.clear()
                self._queued_events = 0
            self._write_group(group)

    def _write_group(self, group: list[_Pending]) -> None:
        try:
            data = _record(group)
            self._append_durably(data)
        except Exception as e:
            error = _failure(e)
            log.error("appending to the event log failed (%s)", type(e).__name__)
            for pending in group:
                pending.future.set_exception(error)
            return
        for pending in group:
            pending.future.set_result(None)

    def _append_durably(self, data: bytes) -> None:
        if self._descriptor is None or self._size >= self._segment_bytes:
            self._open_next()
        assert self._descriptor is not None
        try:
            _write_all(self._descriptor, data)
            os.fdatasync(self._descriptor)
        except OSError:
            self._abandon_tail()
            raise
        self._size += len(data)
        self.syncs += 1

    def _abandon_tail(self) -> None:
        """After a failed write or sync: cut what may have reached the file, and begin a
        new segment for the next group either way (after a failed fsync the page cache
        can no longer be trusted to hold what was written, so that file is sealed)."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        # If the cut fails, the reader stops at the torn frame and moves on once sealed.
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, self._size)
        os.close(descriptor)

    # -- segments -----------------------------------------------------------------

    def _open_next(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
        number = self._segment + 1
        path = segments.segment_path(self.directory, number)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            _write_all(descriptor, records.SEGMENT_MAGIC)
            os.fdatasync(descriptor)
            segments.fsync_directory(self.directory)
        except OSError:
            os.close(descriptor)
            path.unlink(missing_ok=True)
            raise
        self._descriptor, self._segment, self._size = descriptor, number, len(records.SEGMENT_MAGIC)

    def _recover(self) -> None:
        """Cut a torn tail off the last segment (a crash in the middle of a write), so
        that readers find only whole records; the next append begins a new segment."""
        # A scrub interrupted by a crash is finished first: its half-written frame is not
        # a torn tail to cut (scrub.py).
        scrub.replay_journal(self.directory)
        numbers = segments.segment_numbers(self.directory)
        if not numbers:
            return
        self._segment = numbers[-1]
        path = segments.segment_path(self.directory, self._segment)
        data = path.read_bytes()
        whole = records.complete_length(data)
        if whole < len(data):
            with path.open("r+b") as handle:
                handle.truncate(whole)
                handle.flush()
                os.fsync(handle.fileno())
            self.torn_tails_cut += 1
            self.torn_bytes_cut += len(data) - whole
            # Numbers only: the cut bytes may hold personal data.
            log.warning(
                "event log %s: cut a torn tail of %d bytes from segment %d",
                self.writer_id,
                len(data) - whole,
                self._segment,
            )


def _record(group: list[_Pending]) -> bytes:
    events = [row for pending in group for row in pending.events]
    rejected = [row for pending in group for row in pending.rejected]
    parts = []
    if events:
        parts.append(
            records.frame(records.EVENTS, records.batch_of(events, records.LOG_EVENT_SCHEMA))
        )
    if rejected:
        batch = records.batch_of(rejected, records.LOG_REJECTED_SCHEMA)
        parts.append(records.frame(records.REJECTED, batch))
    return b"".join(parts)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def _failure(error: Exception) -> StoreUnavailable:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return LogFull(
            "the event log's disk is full: nothing of this request was kept; free space "
            "under the data directory and retry"
        )
    return StoreUnavailable(f"events could not be written ({type(error).__name__}); retry")


def _take_lock(log_dir: Path, directory: Path) -> int:
    """Create the writer's directory (0700) and hold its lock file while open: two
    processes with one writer id would interleave their frames."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    segments.fsync_directory(log_dir)
    descriptor = os.open(directory / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(descriptor)
        raise StoreLocked(
            f"another process is writing the event log as {directory.name!r}; give each "
            "process its own writer id"
        ) from e
    return descriptor
