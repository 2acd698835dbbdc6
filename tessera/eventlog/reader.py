"""Reading what the writers appended since a position, and removing what was loaded.

The reader (the core process's loader) keeps one position per writer: a segment number
and a byte offset in it, just past the last record it loaded. It lists a writer's
segments before reading them, so a segment with a higher one beside it is known to be
complete: reading it to its end finishes it. A damaged or incomplete frame at the end
of the segment being written is waited for (its writer may be in the middle of the
write); in a sealed segment it is a crash's torn tail, counted and skipped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from tessera.eventlog import records, segments

log = logging.getLogger(__name__)

#: bytes of log read for one load, across writers
READ_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where reading a writer goes on: the segment, and the offset in it (0: its start)."""

    segment: int = 0
    offset: int = 0


@dataclass(slots=True)
class ReadBatch:
    """The records read in one pass, oldest first per writer, and the positions just past
    them (only for the writers that moved)."""

    events: list[pa.Table] = field(default_factory=list)
    rejected: list[pa.Table] = field(default_factory=list)
    positions: dict[str, Position] = field(default_factory=dict)
    torn_tails: int = 0
    bytes_read: int = 0

    @property
    def event_count(self) -> int:
        return sum(table.num_rows for table in self.events)


def read_new(
    log_dir: Path, positions: dict[str, Position], *, max_bytes: int = READ_BYTES
) -> ReadBatch:
    """Read the whole records every writer appended after its position, up to about
    `max_bytes` of them. Does not change any file."""
    batch = ReadBatch()
    writers = segments.writer_ids(log_dir)
    share = max(max_bytes // max(len(writers), 1), 1024 * 1024)
    for writer_id in writers:
        start = positions.get(writer_id, Position())
        moved = _read_writer(log_dir / writer_id, start, share, batch)
        if moved != start:
            batch.positions[writer_id] = moved
    return batch


def _read_writer(writer_dir: Path, position: Position, budget: int, batch: ReadBatch) -> Position:
    numbers = [n for n in segments.segment_numbers(writer_dir) if n >= position.segment]
    for index, number in enumerate(numbers):
        sealed = index < len(numbers) - 1  # listed before reading: see the module's docstring
        offset = position.offset if number == position.segment else 0
        path = segments.segment_path(writer_dir, number)
        scan, torn = _scan_segment(path, offset, budget)
        for found in scan.frames:
            (batch.events if found.kind == records.EVENTS else batch.rejected).append(found.table)
        read = scan.end - max(offset, len(records.SEGMENT_MAGIC))
        batch.bytes_read += max(read, 0)
        budget -= max(read, 0)
        position = Position(number, scan.end)
        if torn and sealed:
            batch.torn_tails += 1
            log.warning("event log %s: skipped a torn tail of segment %d", writer_dir.name, number)
        elif not scan.complete:
            return position  # the budget is spent, or the writer is mid-write
        if not sealed:
            return position
        position = Position(numbers[index + 1], 0)
        if budget <= 0:
            return position
    return position


@dataclass(frozen=True, slots=True)
class _SegmentScan:
    frames: list[records.Frame]
    end: int
    complete: bool  # read to the end of the file


def _scan_segment(path: Path, offset: int, budget: int) -> tuple[_SegmentScan, bool]:
    """The frames of one segment from `offset`; whether it ends in a torn frame."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(len(records.SEGMENT_MAGIC))
            if head != records.SEGMENT_MAGIC:  # created, not yet (or never) written
                return _SegmentScan([], offset, complete=False), True
            start = max(offset, len(records.SEGMENT_MAGIC))
            if start >= size:
                return _SegmentScan([], start, complete=True), False
            handle.seek(start)
            data = handle.read(size - start)
    except FileNotFoundError:
        return _SegmentScan([], offset, complete=True), False
    scan = records.scan(data, start, max_bytes=budget)
    complete = not scan.torn and scan.end >= start + len(data)
    return _SegmentScan(scan.frames, scan.end, complete), scan.torn


def remove_loaded(log_dir: Path, positions: dict[str, Position]) -> int:
    """Delete every segment before a writer's position (all of it is loaded); returns
    how many were deleted."""
    removed = 0
    for writer_id, position in positions.items():
        writer_dir = log_dir / writer_id
        for number in segments.segment_numbers(writer_dir):
            if number >= position.segment:
                break
            segments.segment_path(writer_dir, number).unlink(missing_ok=True)
            removed += 1
        if removed:
            segments.fsync_directory(writer_dir)
    return removed


def backlog(log_dir: Path, positions: dict[str, Position]) -> int:
    """Events in the log's files past the positions (not loaded yet), counted from the
    frame headers."""
    total = 0
    for writer_id in segments.writer_ids(log_dir):
        writer_dir = log_dir / writer_id
        start = positions.get(writer_id, Position())
        for number in segments.segment_numbers(writer_dir):
            if number < start.segment:
                continue
            offset = start.offset if number == start.segment else 0
            try:
                descriptor = os.open(segments.segment_path(writer_dir, number), os.O_RDONLY)
            except FileNotFoundError:
                continue  # loaded and removed meanwhile
            try:
                size = os.fstat(descriptor).st_size
                total += records.count_events(descriptor, offset, size)
            finally:
                os.close(descriptor)
    return total
