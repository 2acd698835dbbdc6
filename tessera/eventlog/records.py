"""One record of the log: its Arrow schemas, its framing, and reading frames back.

A segment file starts with SEGMENT_MAGIC, then holds frames:

    [payload length: u32 LE][CRC-32 of the payload: u32 LE][rows: u32 LE][payload]

(`rows`, the record batch's row count, lets the backlog be counted from the headers
alone) and a payload is one kind byte (EVENTS or REJECTED) followed by the bytes of an Arrow
IPC stream holding one record batch. The length and checksum make a torn tail (a crash
in the middle of a write) detectable: reading stops at the first frame that is
incomplete or whose checksum does not match. Pure: bytes in, values out.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

SEGMENT_MAGIC = b"TSRLOG01"
HEADER = struct.Struct("<III")
EVENTS = 1
REJECTED = 2
#: a frame larger than this is corrupt (a record is one group commit: a few MiB at most)
MAX_PAYLOAD_BYTES = 1 << 30

_STRING = pa.string()
_MICROS = pa.timestamp("us")
#: the `events` table's columns after `seq`, in order: the loader numbers the rows
LOG_EVENT_SCHEMA = pa.schema(
    [
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
#: the `rejected` table's columns after `id`
LOG_REJECTED_SCHEMA = pa.schema(
    [
        ("source_id", _STRING), ("received_at", _MICROS), ("code", _STRING),
        ("field", _STRING), ("reason", _STRING), ("message_id", _STRING),
        ("payload", _STRING),
    ]
)  # fmt: skip
EVENT_FIELDS = tuple(field.name for field in LOG_EVENT_SCHEMA)


def batch_of(rows: Sequence[Sequence[object]], schema: pa.Schema) -> pa.RecordBatch:
    """Rows (tuples in the schema's order) to a record batch, column by column
    (pyarrow converts each column's list in C)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = [
        pa.array(values, type=field.type) for field, values in zip(schema, columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def frame(kind: int, batch: pa.RecordBatch) -> bytes:
    """One record batch as a framed payload, ready to append."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    payload: bytes = bytes([kind]) + sink.getvalue().to_pybytes()
    return HEADER.pack(len(payload), zlib.crc32(payload), batch.num_rows) + payload


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    table: pa.Table
    end: int  # the offset just past this frame, in the segment


@dataclass(frozen=True, slots=True)
class Scan:
    """What reading a stretch of a segment found: whole frames, where they end, and
    whether it stopped at a frame that is incomplete or damaged (`torn`) rather than at
    the end of the bytes."""

    frames: list[Frame]
    end: int
    torn: bool


def scan(data: bytes | memoryview, start: int, *, max_bytes: int | None = None) -> Scan:
    """The whole frames in `data` (the segment's bytes from offset `start`), stopping
    after `max_bytes` of frames, at the end, or at the first bad frame."""
    view = memoryview(data)
    frames: list[Frame] = []
    position = 0
    while position < len(view):
        if max_bytes is not None and frames and position >= max_bytes:
            break
        if len(view) - position < HEADER.size:
            return Scan(frames, start + position, torn=True)
        length, checksum, _rows = HEADER.unpack_from(view, position)
        body_start = position + HEADER.size
        if length < 1 or length > MAX_PAYLOAD_BYTES or body_start + length > len(view):
            return Scan(frames, start + position, torn=True)
        payload = view[body_start : body_start + length]
        if zlib.crc32(payload) != checksum or payload[0] not in (EVENTS, REJECTED):
            return Scan(frames, start + position, torn=True)
        try:
            table = pa.ipc.open_stream(pa.py_buffer(payload[1:])).read_all()
        except pa.ArrowInvalid:
            return Scan(frames, start + position, torn=True)
        position = body_start + length
        frames.append(Frame(payload[0], table, start + position))
    return Scan(frames, start + position, torn=False)


def complete_length(data: bytes | memoryview) -> int:
    """How many bytes of a whole segment (magic included) hold complete frames: where a
    torn tail starts, or the length of `data` when there is none."""
    if len(data) < len(SEGMENT_MAGIC) or bytes(data[: len(SEGMENT_MAGIC)]) != SEGMENT_MAGIC:
        return 0
    return _frame_ends(memoryview(data), len(SEGMENT_MAGIC))


def _frame_ends(view: memoryview, position: int) -> int:
    # Checks lengths and checksums only: recovery need not decode the Arrow payloads.
    while len(view) - position >= HEADER.size:
        length, checksum, _rows = HEADER.unpack_from(view, position)
        body_start = position + HEADER.size
        if length < 1 or length > MAX_PAYLOAD_BYTES or body_start + length > len(view):
            break
        if zlib.crc32(view[body_start : body_start + length]) != checksum:
            break
        position = body_start + length
    return position


def count_events(descriptor: int, start: int, size: int) -> int:
    """The events in the frames from `start` to `size` of an open segment, read from
    their headers alone (a frame still being written counts once it is complete)."""
    total = 0
    position = max(start, len(SEGMENT_MAGIC))
    while size - position >= HEADER.size + 1:
        head = os.pread(descriptor, HEADER.size + 1, position)
        if len(head) < HEADER.size + 1:
            break
        length, _checksum, rows = HEADER.unpack_from(head)
        if length < 1 or position + HEADER.size + length > size:
            break
        if head[HEADER.size] == EVENTS:
            total += rows
        position += HEADER.size + length
    return total
