"""The event log in files and its loader, on real files and a real DuckDB file: torn
tails, restarts, retries that reached the log twice, crashes between reading and
committing, segments rolled and removed."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson

from tessera.eventlog import LogWriter, Position, read_new, records, segments
from tessera.events.contract import Envelope, EventRow, check_message
from tessera.events.sink import LogSink
from tessera.events.timestamps import now_micros
from tessera.runtime import Runtime
from tessera.settings import Settings


def rows(ids: list[str], source_id: str = "s1") -> list[EventRow]:
    envelope = Envelope(source_id, "web", now_micros())
    return [
        check_message(
            {"type": "track", "event": "e", "userId": "u", "messageId": m},
            envelope,
            default_type=None,
            max_bytes=32768,
        )
        for m in ids
    ]


def message_ids(runtime: Runtime) -> list[str]:
    return [row[0] for row in runtime.store.fetch_all("SELECT message_id FROM events ORDER BY seq")]


def read_ids(log_dir: Path, positions: dict[str, Position] | None = None) -> list[str]:
    batch = read_new(log_dir, positions or {})
    return [m for table in batch.events for m in table.column("message_id").to_pylist()]


def writer(log_dir: Path, writer_id: str = "collector-1", **options: int) -> LogWriter:
    return LogWriter(log_dir, writer_id, max_queued_events=1000, retry_after_seconds=1, **options)


def test_a_segment_truncated_mid_record_is_recovered_up_to_the_last_complete_record(
    tmp_path: Path,
) -> None:
    log = writer(tmp_path)
    for batch in (["a", "b"], ["c"], ["d", "e"]):
        log.write(rows(batch))
    log.stop()
    path = segments.segment_path(tmp_path / "collector-1", 1)
    path.write_bytes(path.read_bytes()[:-10])  # a crash in the middle of the third write

    reopened = writer(tmp_path)
    assert reopened.torn_tails_cut == 1
    assert records.complete_length(path.read_bytes()) == path.stat().st_size
    reopened.write(rows(["f"]))  # goes to a new segment
    reopened.stop()
    assert read_ids(tmp_path) == ["a", "b", "c", "f"]


def test_the_reader_waits_for_a_record_still_being_written(tmp_path: Path) -> None:
    log = writer(tmp_path)
    log.write(rows(["a"]))
    log.stop()
    path = segments.segment_path(tmp_path / "collector-1", 1)
    frame = records.frame(records.EVENTS, records.batch_of(rows(["b"]), records.LOG_EVENT_SCHEMA))
    with path.open("ab") as handle:
        handle.write(frame[:20])  # half-written, in the open (last) segment
    first = read_new(tmp_path, {})
    assert first.torn_tails == 0
    position = first.positions["collector-1"]
    with path.open("ab") as handle:
        handle.write(frame[20:])
    assert read_ids(tmp_path, {"collector-1": position}) == ["b"]


def test_a_torn_tail_in_a_sealed_segment_is_skipped(tmp_path: Path) -> None:
    log = writer(tmp_path)
    log.write(rows(["a"]))
    log.stop()
    with segments.segment_path(tmp_path / "collector-1", 1).open("ab") as handle:
        handle.write(b"\x00\x01garbage")  # not cut: the writer did not restart yet
    segment_two = segments.segment_path(tmp_path / "collector-1", 2)
    segment_two.write_bytes(
        records.SEGMENT_MAGIC
        + records.frame(records.EVENTS, records.batch_of(rows(["b"]), records.LOG_EVENT_SCHEMA))
    )
    batch = read_new(tmp_path, {})
    assert batch.torn_tails == 1
    assert [m for t in batch.events for m in t.column("message_id").to_pylist()] == ["a", "b"]


def test_a_retried_batch_that_reached_the_log_twice_is_loaded_once(runtime: Runtime) -> None:
    runtime.sink.start()
    runtime.sink.submit(rows(["a", "b"])).result(10)
    runtime.sink.submit(rows(["b", "a", "c"])).result(10)  # the client's retry, and one more
    assert runtime.loader.catch_up() == 3
    assert message_ids(runtime) == ["a", "b", "c"]
    assert runtime.loader.duplicates == 2


def test_a_crash_between_reading_and_committing_loads_the_records_again_once(
    settings: Settings,
) -> None:
    sink = LogSink(settings.log_dir, "collector-1", max_queued_events=100, retry_after_seconds=1)
    sink.start()
    sink.submit(rows(["a", "b"])).result(10)
    sink.submit(rows(["c"])).result(10)
    first = Runtime.open(settings)  # loads at open: both records
    assert message_ids(first) == ["a", "b", "c"]
    read_new(settings.log_dir, dict(first.writer.positions))  # read, never committed
    sink.submit(rows(["d"])).result(10)
    read_new(settings.log_dir, dict(first.writer.positions))  # read, never committed
    first.loader.stop()
    first.store.close()  # "crash": no close of the runtime, nothing more loaded
    first.sink.log.stop()
    sink.stop()
    again = Runtime.open(settings)
    try:
        assert message_ids(again) == ["a", "b", "c", "d"]
        assert again.loader.catch_up() == 0
    finally:
        again.close()


def test_restart_catches_up_from_the_log(settings: Settings) -> None:
    sink = LogSink(settings.log_dir, "collector-1", max_queued_events=100, retry_after_seconds=1)
    sink.start()
    for n in range(5):
        sink.submit(rows([f"m{n}-{i}" for i in range(20)])).result(10)
    sink.stop()
    runtime = Runtime.open(settings)
    try:
        assert runtime.writer.last_seq == 100
        assert runtime.pipeline.lag().log_backlog_events == 0
        assert runtime.pipeline.process().events == 100
    finally:
        runtime.close()


def test_loaded_segments_are_removed_and_the_lag_counts_what_is_not_loaded(
    settings: Settings,
) -> None:
    sink = LogSink(
        settings.log_dir,
        "collector-1",
        max_queued_events=1000,
        retry_after_seconds=1,
        segment_bytes=4096,
    )
    sink.start()
    for n in range(20):
        sink.submit(rows([f"m{n}-{i}" for i in range(10)])).result(10)
    writer_dir = settings.log_dir / "collector-1"
    assert len(segments.segment_numbers(writer_dir)) > 3
    runtime = Runtime.open(settings)
    try:
        assert runtime.writer.last_seq == 200
        assert segments.segment_numbers(writer_dir) == [sink.log.segment]  # the open one
        sink.submit(rows(["late-1", "late-2"])).result(10)
        assert runtime.pipeline.lag().log_backlog_events == 2
        assert runtime.loader.catch_up() == 2
    finally:
        sink.stop()
        runtime.close()


def test_rejected_messages_travel_through_the_log(runtime: Runtime) -> None:
    runtime.start()
    source = runtime.sources.create("web", "web")
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u", "messageId": "bad"}]})
    key = "Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode()
    submission = runtime.collector.submit(
        body, message_type=None, authorization=key, content_encoding=None, received_at=now_micros()
    )
    assert submission.future.result(10).rejected == 1
    runtime.loader.stop()
    runtime.loader.catch_up()
    assert runtime.store.fetch_all("SELECT message_id, code FROM rejected") == [
        ("bad", "missing_field")
    ]


def test_a_second_process_with_the_same_writer_id_is_refused(tmp_path: Path) -> None:
    log = writer(tmp_path)
    try:
        opened_twice = None
        try:
            opened_twice = writer(tmp_path)
        except Exception as error:
            assert getattr(error, "code", None) == "store_locked"
        assert opened_twice is None
    finally:
        log.stop()


def test_segment_files_are_private(tmp_path: Path) -> None:
    log = writer(tmp_path)
    log.write(rows(["a"]))
    log.stop()
    path = segments.segment_path(tmp_path / "collector-1", 1)
    assert os.stat(path).st_mode & 0o777 == 0o600
