"""Removing a person's bytes from the log's segment files: in place, crash-safe, and
without moving any record (for the erasure of a data-subject request).

A segment is appended to by its writer, possibly another process holding it open, and
read by the loader from a byte position: it cannot be replaced by a rewritten copy (the
writer would go on appending to the unlinked file) and no record may change length (the
positions would point into the middle of one). So a frame holding the person is
overwritten with a frame of the same length: every string value of the rows that name
them, and any other occurrence of their identifiers, filled with `-`, and the checksum
recomputed. Only frames already loaded into the store are touched (before the loader's
position, the caller holding the loader still): their rows are then deleted from the
store, and what is loaded is never read again. The segment is deleted, as always, once
the loader has passed it.

Crash safety: the new frame is first written to `scrub.journal` in the writer's
directory (fsync'd), then over the old frame (fdatasync), then the journal is removed.
A crash in between leaves a journal that `replay_journal` writes again, idempotently:
the writer calls it before it cuts a torn tail at open (writer.py), so a half-written
frame is never mistaken for a crash's torn tail. The journal holds only scrubbed bytes.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tessera.eventlog import records, segments
from tessera.eventlog.reader import Position

JOURNAL = "scrub.journal"
FILLER = ord("-")
_JOURNAL_HEAD = struct.Struct("<QQI")  # segment, offset, length of the new frame


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """What scrubbing found: frames rewritten, rows blanked, segments looked at."""

    frames: int = 0
    rows: int = 0
    segments: int = 0

    def __add__(self, other: Scrubbed) -> Scrubbed:
        return Scrubbed(
            self.frames + other.frames, self.rows + other.rows, self.segments + other.segments
        )


def scrub_log(log_dir: Path, positions: dict[str, Position], needles: Sequence[str]) -> Scrubbed:
    """Scrub every writer's loaded frames (before its position in `positions`) of the
    `needles` (compared lower-cased). The caller keeps the loader from running."""
    lowered = [n.lower().encode() for n in needles if n]
    total = Scrubbed()
    if not lowered:
        return total
    for writer_id in segments.writer_ids(log_dir):
        position = positions.get(writer_id, Position())
        total += _scrub_writer(log_dir / writer_id, position, lowered)
    return total


def _scrub_writer(writer_dir: Path, position: Position, needles: list[bytes]) -> Scrubbed:
    replay_journal(writer_dir)
    total = Scrubbed()
    for number in segments.segment_numbers(writer_dir):
        if number > position.segment:
            break  # not loaded yet: left to suppression and a later retry
        limit = None if number < position.segment else position.offset
        total += _scrub_segment(writer_dir, number, limit, needles)
    return total


def _scrub_segment(
    writer_dir: Path, number: int, limit: int | None, needles: list[bytes]
) -> Scrubbed:
    path = segments.segment_path(writer_dir, number)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Scrubbed()
    end = len(data) if limit is None else min(limit, len(data))
    start = len(records.SEGMENT_MAGIC)
    if end <= start or data[:start] != records.SEGMENT_MAGIC:
        return Scrubbed(segments=1)
    frames = rows = 0
    position = start
    view = memoryview(data)
    while position + records.HEADER.size <= end:
        length, _checksum, _rows = records.HEADER.unpack_from(view, position)
        body = position + records.HEADER.size
        if length < 1 or body + length > end:
            break
        payload = bytes(view[body : body + length])
        if any(needle in payload.lower() for needle in needles):
            cleaned, blanked = scrub_payload(payload, needles)
            frame = records.HEADER.pack(length, zlib.crc32(cleaned), _rows) + cleaned
            _overwrite(writer_dir, number, position, frame)
            frames += 1
            rows += blanked
        position = body + length
    return Scrubbed(frames, rows, 1)


def scrub_payload(payload: bytes, needles: list[bytes]) -> tuple[bytes, int]:
    """A frame's payload of the same length: every string value of each row naming a
    needle filled, then any needle left (in another row, a header) filled. Pure."""
    buffer = bytearray(payload)
    blanked = 0
    # Not a batch read in place: the needles alone are filled below.
    with contextlib.suppress(pa.ArrowInvalid, ValueError):
        blanked = _blank_rows(payload, buffer, needles)
    lowered = bytes(buffer).lower()
    for needle in needles:
        found = lowered.find(needle)
        while found >= 0:
            buffer[found : found + len(needle)] = bytes([FILLER]) * len(needle)
            found = lowered.find(needle, found + len(needle))
    return bytes(buffer), blanked


def _blank_rows(payload: bytes, buffer: bytearray, needles: list[bytes]) -> int:
    source = pa.py_buffer(payload)
    table = pa.ipc.open_stream(source[1:]).read_all()
    text_columns = [
        name for name, kind in zip(table.column_names, table.schema.types, strict=True)
        if pa.types.is_string(kind)
    ]  # fmt: skip
    if not text_columns or table.num_rows == 0:
        return 0
    mask = np.zeros(table.num_rows, dtype=bool)
    for name in text_columns:
        lowered = pc.utf8_lower(table[name])
        for needle in needles:
            hits = pc.fill_null(pc.match_substring(lowered, needle.decode()), False)
            mask |= np.asarray(hits.to_numpy(zero_copy_only=False), dtype=bool)
    if not mask.any():
        return 0
    base = source.address
    for name in text_columns:
        offset_in_table = 0
        for chunk in table[name].chunks:
            _, offsets_buffer, data_buffer = chunk.buffers()
            if data_buffer is None or offsets_buffer is None or data_buffer.size == 0:
                offset_in_table += len(chunk)
                continue
            start = data_buffer.address - base
            if start < 0 or start + data_buffer.size > len(payload):
                raise ValueError("the batch is not read in place")
            offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
                chunk.offset : chunk.offset + len(chunk) + 1
            ]
            for row in np.nonzero(mask[offset_in_table : offset_in_table + len(chunk)])[0]:
                low, high = int(offsets[row]), int(offsets[row + 1])
                buffer[start + low : start + high] = bytes([FILLER]) * (high - low)
            offset_in_table += len(chunk)
    return int(mask.sum())


def _overwrite(writer_dir: Path, number: int, offset: int, frame: bytes) -> None:
    journal = writer_dir / JOURNAL
    temporary = writer_dir / (JOURNAL + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(_JOURNAL_HEAD.pack(number, offset, len(frame)) + frame)
        handle.write(struct.pack("<I", zlib.crc32(frame)))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, journal)
    segments.fsync_directory(writer_dir)
    _apply(writer_dir, number, offset, frame)
    journal.unlink()
    segments.fsync_directory(writer_dir)


def _apply(writer_dir: Path, number: int, offset: int, frame: bytes) -> None:
    descriptor = os.open(segments.segment_path(writer_dir, number), os.O_WRONLY)
    try:
        os.pwrite(descriptor, frame, offset)
        os.fdatasync(descriptor)
    finally:
        os.close(descriptor)


def replay_journal(writer_dir: Path) -> bool:
    """Finish a scrub a crash interrupted (see the module docstring); True if there was
    one. A journal that is itself incomplete was never applied: it is dropped."""
    journal = writer_dir / JOURNAL
    (writer_dir / (JOURNAL + ".tmp")).unlink(missing_ok=True)
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return False
    head = _JOURNAL_HEAD.size
    if len(data) >= head + 4:
        number, offset, length = _JOURNAL_HEAD.unpack_from(data)
        frame = data[head : head + length]
        checksum = data[head + length : head + length + 4]
        whole = len(frame) == length and len(checksum) == 4
        intact = whole and struct.unpack("<I", checksum)[0] == zlib.crc32(frame)
        if intact and segments.segment_path(writer_dir, number).exists():
            _apply(writer_dir, number, offset, frame)
    journal.unlink(missing_ok=True)
    segments.fsync_directory(writer_dir)
    return True
