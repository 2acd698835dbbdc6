"""The framing of the event log's records: pure bytes in, frames out."""

from __future__ import annotations

import pyarrow as pa

from tessera.eventlog import records


def _batch(values: list[str]) -> pa.RecordBatch:
    rows = [
        ("s", None, "c", "f", "r", value, "{}") for value in values
    ]  # a rejected row: LOG_REJECTED_SCHEMA, received_at left null
    return records.batch_of(rows, records.LOG_REJECTED_SCHEMA)


def test_frames_read_back_as_written() -> None:
    data = records.frame(records.REJECTED, _batch(["a", "b"])) + records.frame(
        records.REJECTED, _batch(["c"])
    )
    scan = records.scan(data, 100)
    assert not scan.torn and scan.end == 100 + len(data)
    assert [f.table.column("message_id").to_pylist() for f in scan.frames] == [["a", "b"], ["c"]]


def test_a_frame_cut_short_is_torn_and_reading_stops_before_it() -> None:
    first = records.frame(records.REJECTED, _batch(["a"]))
    second = records.frame(records.REJECTED, _batch(["b"]))
    for cut in (1, len(records.HEADER.pack(0, 0, 0)) + 3, len(second) - 1):
        scan = records.scan(first + second[:cut], 0)
        assert scan.torn and scan.end == len(first) and len(scan.frames) == 1


def test_a_damaged_frame_fails_its_checksum() -> None:
    data = bytearray(records.frame(records.REJECTED, _batch(["a"])))
    data[-5] ^= 0xFF
    scan = records.scan(bytes(data), 0)
    assert scan.torn and not scan.frames


def test_complete_length_stops_at_the_torn_tail_of_a_segment() -> None:
    whole = records.SEGMENT_MAGIC + records.frame(records.REJECTED, _batch(["a"]))
    torn = whole + records.frame(records.REJECTED, _batch(["b"]))[:-3]
    assert records.complete_length(torn) == len(whole)
    assert records.complete_length(whole) == len(whole)
    assert records.complete_length(b"TSR") == 0  # created, magic not yet written
