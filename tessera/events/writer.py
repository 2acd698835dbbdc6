"""The one writer of `events` and `rejected`: loads the log in files, and imports.

Two doors, one lock: `load` takes what the loader read from the event log in files
(eventlog/reader.py) and `write` takes an import's rows. Each, in one transaction,
drops events whose (source, messageId) is already stored (or earlier in the same
load), numbers the rest with dense sequence numbers, appends them and the rejections
as Arrow tables, and (for `load`) records how far each writer's files are loaded. A
crash before COMMIT leaves the positions where they were, so the same records are
loaded again, once. Only after COMMIT do the counters and the dedupe index move.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tessera.errors import StoreUnavailable
from tessera.eventlog import LOG_EVENT_SCHEMA, LOG_REJECTED_SCHEMA, Position, ReadBatch
from tessera.eventlog.records import batch_of
from tessera.events.contract import EventRow
from tessera.events.dedupe import DedupeIndex, first_unseen
from tessera.events.screens import Screen
from tessera.events.sink import DeadLetter, WriteResult
from tessera.store import Store

__all__ = ["EVENT_SCHEMA", "REJECTED_SCHEMA", "DeadLetter", "EventWriter", "WriteResult"]

log = logging.getLogger(__name__)

EVENT_SCHEMA = pa.schema([("seq", pa.int64()), *LOG_EVENT_SCHEMA])
REJECTED_SCHEMA = pa.schema([("id", pa.int64()), *LOG_REJECTED_SCHEMA])


@dataclass(frozen=True, slots=True)
class Loaded:
    """What one load committed."""

    events: int
    duplicates: int
    rejected: int
    last_seq: int
    #: per source: (source_id, events appended, duplicates dropped, rejected), for metrics
    by_source: tuple[tuple[str, int, int, int], ...] = ()
    #: per event appended, seconds from its receipt to this commit (metrics' ingest latency)
    ingest_seconds: np.ndarray | None = None


class EventWriter:
    """Owns all appends to `events` and `rejected`, and the log's read positions."""

    def __init__(
        self,
        store: Store,
        *,
        dedupe_since_micros: int | None = None,
        screen: Screen | None = None,
    ) -> None:
        self._store = store
        self.screen = screen
        self._lock = threading.Lock()
        self.commits = 0
        #: called with what each commit (a load of the log, an import) appended: metrics
        self.observers: list[Callable[[Loaded], None]] = []
        self._next_seq, self._next_rejection_id = self._load_counters()
        self._index = self._load_index(dedupe_since_micros)
        self.positions = self._load_positions()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No load and no import commits while this is held (a backup's copy)."""
        with self._lock:
            yield

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def write(
        self, rows: Sequence[EventRow], dead_letters: Sequence[DeadLetter] = ()
    ) -> WriteResult:
        """Append an import's rows (and rejections) now, without the log; returns how many
        were kept and how many were already stored.

        Raises StoreUnavailable when the rows could not be written (nothing was)."""
        try:
            return self._write(rows, dead_letters)
        except Exception as e:  # rolled back: nothing of it is stored
            log.exception("writing imported events failed")
            raise StoreUnavailable(
                f"events could not be written ({type(e).__name__}); retry"
            ) from e

    def _write(self, rows: Sequence[EventRow], dead_letters: Sequence[DeadLetter]) -> WriteResult:
        events = pa.Table.from_batches([batch_of(rows, LOG_EVENT_SCHEMA)]) if rows else None
        rejected = None
        if dead_letters:
            letters = [letter.log_row() for letter in dead_letters]
            rejected = pa.Table.from_batches([batch_of(letters, LOG_REJECTED_SCHEMA)])
        loaded = self._commit(events, rejected, {})
        return WriteResult(loaded.events, loaded.duplicates, loaded.rejected)

    def load(self, batch: ReadBatch) -> Loaded:
        """Append what was read from the log, and move the read positions, in one
        transaction."""
        events = pa.concat_tables(batch.events) if batch.events else None
        rejected = pa.concat_tables(batch.rejected) if batch.rejected else None
        return self._commit(events, rejected, batch.positions)

    # -- the transaction ----------------------------------------------------------

    def _commit(
        self, events: pa.Table | None, rejected: pa.Table | None, positions: dict[str, Position]
    ) -> Loaded:
        with self._lock:
            kept, keys = events, np.empty(0, dtype=np.uint64)
            if events is not None:
                keys = events.column("dedupe_key").to_numpy()
                keep = first_unseen(self._index, keys)
                keys = keys[keep]
                if not keep.all():
                    kept = events.filter(pa.array(keep))
            violations: list[tuple[object, ...]] = []
            if kept is not None and self.screen is not None and kept.num_rows:
                screened = self.screen.screen(kept)
                if screened is not None:
                    kept, violations = screened.kept, screened.violations
                    if screened.rejected is not None and screened.rejected.num_rows:
                        rejected = (
                            screened.rejected
                            if rejected is None
                            else pa.concat_tables([rejected, screened.rejected])
                        )
            count = 0 if kept is None else kept.num_rows
            dead = 0 if rejected is None else rejected.num_rows
            started = time.perf_counter()
            with self._store.transaction(serialised=False) as store:
                if kept is not None and count:
                    store.insert_arrow("events", _numbered(kept, "seq", self._next_seq))
                if rejected is not None and dead:
                    numbered = _numbered(rejected, "id", self._next_rejection_id)
                    store.insert_arrow("rejected", numbered)
                if violations:
                    columns = [list(column) for column in zip(*violations, strict=True)]
                    store.execute(
                        "INSERT INTO plan_violations SELECT unnest(?), unnest(?), unnest(?), "
                        "unnest(?), unnest(?), unnest(?), unnest(?)",
                        columns,
                    )
                for writer_id, position in positions.items():
                    self._save_position(store, writer_id, position)
            self.commits += 1
            log.debug(
                "committed %d events in %.1f ms", count, 1000 * (time.perf_counter() - started)
            )
            self._next_seq += count
            self._next_rejection_id += dead
            self._index.add_array(keys)
            self.positions.update(positions)
            duplicates = 0 if events is None else events.num_rows - count
            loaded = Loaded(
                count,
                duplicates,
                dead,
                self.last_seq,
                _by_source(events, kept, rejected),
                _seconds_since_receipt(kept),
            )
        for observe in self.observers:
            try:
                observe(loaded)
            except Exception:  # a metric must never fail a load that is committed
                log.exception("an observer of the event writer failed")
        return loaded

    def _save_position(self, store: Store, writer_id: str, position: Position) -> None:
        parameters = [position.segment, position.offset, writer_id]
        if writer_id in self.positions:
            store.execute(
                "UPDATE log_positions SET segment = ?, byte_offset = ? WHERE writer_id = ?",
                parameters,
            )
        else:
            store.execute(
                "INSERT INTO log_positions (segment, byte_offset, writer_id) VALUES (?, ?, ?)",
                parameters,
            )

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

    def _load_positions(self) -> dict[str, Position]:
        rows = self._store.fetch_all("SELECT writer_id, segment, byte_offset FROM log_positions")
        return {writer_id: Position(segment, offset) for writer_id, segment, offset in rows}


def _numbered(table: pa.Table, column: str, first: int) -> pa.Table:
    numbers = pa.array(np.arange(first, first + table.num_rows, dtype=np.int64))
    return table.add_column(0, column, numbers)


def _source_counts(table: pa.Table | None) -> dict[str, int]:
    if table is None or not table.num_rows:
        return {}
    counted = pc.value_counts(table.column("source_id")).to_pylist()
    return {str(item["values"]): int(item["counts"]) for item in counted}


def _by_source(
    events: pa.Table | None, kept: pa.Table | None, rejected: pa.Table | None
) -> tuple[tuple[str, int, int, int], ...]:
    """Per source: events appended, duplicates dropped and rejections, in one load."""
    read, refused = _source_counts(events), _source_counts(rejected)
    appended = read if kept is events else _source_counts(kept)  # no duplicate: no second count
    return tuple(
        (source, appended.get(source, 0), read.get(source, 0) - appended.get(source, 0),
         refused.get(source, 0))
        for source in sorted(read.keys() | refused.keys())
    )  # fmt: skip


def _seconds_since_receipt(kept: pa.Table | None) -> np.ndarray | None:
    """Seconds from each appended event's receipt (received_at, UTC micros) to now."""
    if kept is None or not kept.num_rows:
        return None
    received = kept.column("received_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    now_micros = time.time() * 1_000_000
    seconds: np.ndarray = np.maximum(now_micros - received.astype(np.float64), 0.0) / 1_000_000
    return seconds
