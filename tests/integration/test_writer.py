"""The writer on a real DuckDB file (and the log in files before it): group commit,
dedupe, dead letters, restarts."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.errors import InvalidMessage, Overloaded
from tessera.events.contract import Envelope, EventRow, check_message, reject
from tessera.events.sink import DeadLetter, LogSink
from tessera.events.timestamps import now_micros
from tessera.runtime import Runtime
from tessera.settings import Settings


def rows(source_id: str, ids: list[str]) -> list[EventRow]:
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


def count(runtime: Runtime, sql: str = "SELECT count(*) FROM events") -> Any:
    row = runtime.store.fetch_one(sql)
    assert row is not None
    return row[0]


def test_duplicates_within_and_across_groups_are_dropped(runtime: Runtime) -> None:
    first = runtime.writer.write(rows("s1", ["a", "b", "a"]))
    assert (first.accepted, first.duplicates) == (2, 1)
    second = runtime.writer.write(rows("s1", ["b", "c"]))
    assert (second.accepted, second.duplicates) == (1, 1)
    assert count(runtime) == 3


def test_the_same_message_id_in_another_source_is_not_a_duplicate(runtime: Runtime) -> None:
    runtime.writer.write(rows("s1", ["a"]))
    assert runtime.writer.write(rows("s2", ["a"])).accepted == 1


def test_sequence_numbers_are_dense_and_ordered(runtime: Runtime) -> None:
    runtime.writer.write(rows("s1", ["a", "b"]))
    runtime.writer.write(rows("s1", ["c"]))
    assert runtime.store.fetch_all("SELECT seq, message_id FROM events ORDER BY seq") == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
    ]


def test_dedupe_survives_a_restart(settings: Settings) -> None:
    opened = Runtime.open(settings)
    opened.writer.write(rows("s1", ["a", "b"]))
    opened.close()
    reopened = Runtime.open(settings)
    try:
        result = reopened.writer.write(rows("s1", ["a", "b", "c"]))
        assert (result.accepted, result.duplicates) == (1, 2)
        assert reopened.writer.last_seq == 3
    finally:
        reopened.close()


def test_dedupe_window_forgets_old_keys_at_start(settings: Settings) -> None:
    opened = Runtime.open(settings)
    opened.writer.write(rows("s1", ["old"]))
    opened.store.execute("UPDATE events SET received_at = received_at - INTERVAL 3 DAY")
    opened.close()
    windowed = Runtime.open(settings.model_copy(update={"dedupe_window_days": 1}))
    try:
        assert windowed.writer.write(rows("s1", ["old"])).accepted == 1
    finally:
        windowed.close()


def test_dead_letters_are_stored_with_reason_and_payload(runtime: Runtime) -> None:
    message = {"type": "track", "userId": "u"}
    try:
        check_message(
            message, Envelope("s1", "web", now_micros()), default_type=None, max_bytes=100
        )
    except InvalidMessage as e:
        letter = DeadLetter("s1", now_micros(), reject(message, e))
    runtime.writer.write([], [letter])
    assert runtime.store.fetch_all("SELECT code, field, payload FROM rejected") == [
        ("missing_field", "event", '{"type":"track","userId":"u"}')
    ]


def test_group_commit_syncs_everything_queued_once_and_loads_it_densely(
    runtime: Runtime,
) -> None:
    # Fifty requests wait in the queue before the log's thread starts: it must write them
    # all as one record with one fsync, not request by request.
    futures = [runtime.sink.submit(rows("s1", [f"m{i}-{j}" for j in range(10)])) for i in range(50)]
    before = runtime.sink.log.syncs
    runtime.sink.start()
    assert sum(f.result(10).accepted for f in futures) == 500
    assert runtime.sink.log.syncs - before == 1
    assert runtime.loader.catch_up() == 500
    assert runtime.store.fetch_one("SELECT count(*), max(seq) - min(seq) + 1 FROM events") == (
        500,
        500,
    )


def test_a_full_queue_answers_overloaded(settings: Settings) -> None:
    sink = LogSink(settings.log_dir, "collector-1", max_queued_events=5, retry_after_seconds=3)
    sink.submit(rows("s1", ["a", "b", "c", "d"]))  # not started: stays queued
    with pytest.raises(Overloaded) as caught:
        sink.submit(rows("s1", ["e", "f"]))
    assert caught.value.retry_after == 3
    sink.stop()


def test_a_failed_commit_fails_its_futures_and_keeps_the_log_whole(runtime: Runtime) -> None:
    runtime.writer.write(rows("s1", ["a"]))
    bad = rows("s1", ["b"])[0]._replace(timestamp="not a time")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="could not be written"):
        runtime.writer.write([bad])
    assert runtime.writer.write(rows("s1", ["b"])).accepted == 1
    assert runtime.store.fetch_all("SELECT seq, message_id FROM events ORDER BY seq") == [
        (1, "a"),
        (2, "b"),
    ]
