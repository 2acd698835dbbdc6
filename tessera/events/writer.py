"""The one writer: group commit of accepted events into the log.

HTTP handlers (and imports) validate messages and `submit` them; a single thread
takes whatever is queued, drops duplicates, appends the rest and the rejections in
one transaction, commits, and only then resolves each submitter's future. So a 200
always means "on disk", and throughput comes from grouping: a commit costs the same
for one request as for a hundred (ARCHITECTURE §3).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa

from tessera.errors import Overloaded, StoreUnavailable
from tessera.events.contract import EventRow, Rejection
from tessera.events.dedupe import DedupeIndex
from tessera.store import Store

log = logging.getLogger(__name__)

_STRING = pa.string()
_MICROS = pa.timestamp("us")
EVENT_SCHEMA = pa.schema(
    [("seq", pa.int64())]
    + [
        (name, kind)
        for name, kind in (
            ("source_id", _STRING), ("channel", _STRING), ("message_id", _STRING),
            ("dedupe_key", pa.uint64()), ("type", _STRING), ("event", _STRING),
            ("name", _STRING), ("user_id", _STRING), ("anonymous_id", _STRING),
            ("previous_id", _STRING), ("group_id", _STRING), ("email", _STRING),
            ("phone", _STRING), ("device_id", _STRING), ("advertising_id", _STRING),
            ("external_ids", _STRING), ("timestamp", _MICROS),
            ("original_timestamp", _MICROS), ("sent_at", _MICROS), ("received_at", _MICROS),
            ("properties", _STRING), ("traits", _STRING), ("payload", _STRING),
        )
    ]
)  # fmt: skip
REJECTED_SCHEMA = pa.schema(
    [
        ("id", pa.int64()), ("source_id", _STRING), ("received_at", _MICROS),
        ("code", _STRING), ("field", _STRING), ("reason", _STRING),
        ("message_id", _STRING), ("payload", _STRING),
    ]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejection with where and when it arrived."""

    source_id: str | None
    received_at: int
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class WriteResult:
    accepted: int
    duplicates: int
    rejected: int


@dataclass(slots=True)
class _Pending:
    rows: Sequence[EventRow]
    dead_letters: Sequence[DeadLetter]
    future: Future[WriteResult] = field(default_factory=Future)


class EventWriter:
    """Owns all appends to `events` and `rejected` while it runs."""

    def __init__(
        self,
        store: Store,
        *,
        max_queued_events: int,
        retry_after_seconds: int,
        dedupe_since_micros: int | None = None,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._max_queued = max_queued_events
        self._retry_after = retry_after_seconds
        self._on_commit = on_commit
        self._queue: deque[_Pending] = deque()
        self._queued_events = 0
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.commits = 0
        self._next_seq, self._next_rejection_id = self._load_counters()
        self._index = self._load_index(dedupe_since_micros)

    # -- public -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def submit(
        self, rows: Sequence[EventRow], dead_letters: Sequence[DeadLetter] = ()
    ) -> Future[WriteResult]:
        """Queue rows for the next group commit; the future resolves after COMMIT.

        Raises Overloaded (HTTP 429) when the queue is full, rather than letting memory
        grow without bound; one request is always admitted into an empty queue.
        """
        pending = _Pending(rows, dead_letters)
        with self._condition:
            if self._stopping:
                raise StoreUnavailable("the server is shutting down; retry shortly")
            if self._queued_events and self._queued_events + len(rows) > self._max_queued:
                raise Overloaded(
                    f"{self._queued_events} events are waiting to be written; "
                    f"retry after {self._retry_after} s",
                    retry_after=self._retry_after,
                )
            self._queue.append(pending)
            self._queued_events += len(rows)
            self._condition.notify()
        return pending.future

    def write(
        self, rows: Sequence[EventRow], dead_letters: Sequence[DeadLetter] = ()
    ) -> WriteResult:
        """Submit and wait: for imports and the CLI. Works with or without the thread."""
        if self._thread is None:
            pending = _Pending(rows, dead_letters)
            self._write_group([pending])
            return pending.future.result()
        return self.submit(rows, dead_letters).result()

    @property
    def queued_events(self) -> int:
        return self._queued_events

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

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
        keys = [row.dedupe_key for pending in group for row in pending.rows]
        already = self._index.contains(keys)
        seen_here: set[int] = set()
        kept: list[EventRow] = []
        results: list[WriteResult] = []
        position = 0
        for pending in group:
            accepted = duplicates = 0
            for row in pending.rows:
                key = row.dedupe_key
                if already[position] or key in seen_here:
                    duplicates += 1
                else:
                    seen_here.add(key)
                    kept.append(row)
                    accepted += 1
                position += 1
            results.append(WriteResult(accepted, duplicates, len(pending.dead_letters)))
        dead = [letter for pending in group for letter in pending.dead_letters]
        try:
            started = time.perf_counter()
            with self._store.transaction(serialised=False) as store:
                if kept:
                    store.insert_arrow("events", _event_table(kept, self._next_seq))
                if dead:
                    store.insert_arrow("rejected", _rejected_table(dead, self._next_rejection_id))
            self.commits += 1
            log.debug(
                "committed %d events in %.1f ms", len(kept), 1000 * (time.perf_counter() - started)
            )
        except Exception as e:  # the transaction rolled back: nothing of it is in the log
            log.exception("group commit failed")
            error = StoreUnavailable(f"events could not be written ({type(e).__name__}); retry")
            for pending in group:
                pending.future.set_exception(error)
            return
        self._next_seq += len(kept)
        self._next_rejection_id += len(dead)
        self._index.add(seen_here)
        if self._on_commit is not None and kept:
            self._on_commit(self.last_seq)
        for pending, result in zip(group, results, strict=True):
            pending.future.set_result(result)

    # -- start-up -----------------------------------------------------------------

    def _load_counters(self) -> tuple[int, int]:
        events = self._store.fetch_one("SELECT coalesce(max(seq), 0) FROM events")
        rejected = self._store.fetch_one("SELECT coalesce(max(id), 0) FROM rejected")
        assert events is not None and rejected is not None
        return int(events[0]) + 1, int(rejected[0]) + 1

    def _load_index(self, since_micros: int | None) -> DedupeIndex:
        if since_micros is None:
            arrays = self._store.fetch_numpy("SELECT dedupe_key FROM events")
        else:
            arrays = self._store.fetch_numpy(
                "SELECT dedupe_key FROM events WHERE received_at >= make_timestamp(?)",
                [since_micros],
            )
        return DedupeIndex(arrays["dedupe_key"])


_EVENT_FIELDS = list(EVENT_SCHEMA)[1:]


def _event_table(rows: list[EventRow], first_seq: int) -> pa.Table:
    """Rows to an Arrow table, column by column (pyarrow converts each list in C)."""
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(range(first_seq, first_seq + len(rows)), type=pa.int64())]
    for schema_field, values in zip(_EVENT_FIELDS, columns, strict=True):
        arrays.append(pa.array(values, type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def _rejected_table(letters: list[DeadLetter], first_id: int) -> pa.Table:
    data = {
        "id": list(range(first_id, first_id + len(letters))),
        "source_id": [d.source_id for d in letters],
        "received_at": [d.received_at for d in letters],
        "code": [d.rejection.code for d in letters],
        "field": [d.rejection.field for d in letters],
        "reason": [d.rejection.reason for d in letters],
        "message_id": [d.rejection.message_id for d in letters],
        "payload": [d.rejection.payload for d in letters],
    }
    return pa.Table.from_pydict(data, schema=REJECTED_SCHEMA)
