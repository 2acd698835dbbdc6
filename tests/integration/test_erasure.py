"""Erasure on a real store and a real log in files (issue 15): the person is gone from
every byte of the data directory, the others stay, and a retry is idempotent."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tessera.eventlog import LogWriter, records, scrub, segments
from tessera.events.contract import Envelope, EventRow, check_message
from tessera.events.timestamps import now_micros
from tessera.governance import access, erasure
from tessera.governance.suppression import PublishedSuppression
from tessera.runtime import Runtime

JANE = ("u-jane-42", "Jane.Doe@Example.com", "+33 6 39 98 76 54", "anon-jane-7f3a9c")
BOB = ("u-bob-77", "bob.builder@example.org")


def rows(runtime: Runtime, messages: list[dict[str, Any]]) -> list[EventRow]:
    if "web" not in {s.name for s in runtime.sources.list()}:
        runtime.sources.create("web", "web")
    source = runtime.sources.get("web")
    envelope = Envelope(source.id, source.channel, now_micros())
    return [check_message(m, envelope, default_type=None, max_bytes=1 << 20) for m in messages]


def people(runtime: Runtime) -> None:
    user, email, phone, anonymous = JANE
    messages = [
        {"type": "page", "anonymousId": anonymous, "messageId": "j1", "name": "Home",
         "properties": {"url": "https://shop.example/?ref=" + anonymous}},
        {"type": "identify", "userId": user, "anonymousId": anonymous, "messageId": "j2",
         "traits": {"email": email, "phone": phone, "firstName": "Jane"}},
        {"type": "track", "userId": user, "event": "Order Completed", "messageId": "j3",
         "properties": {"total": 42.5}},
        {"type": "identify", "userId": BOB[0], "messageId": "b1", "traits": {"email": BOB[1]}},
    ]  # fmt: skip
    runtime.sink.log.write(rows(runtime, messages))
    runtime.loader.catch_up()
    runtime.pipeline.process()


def needles() -> list[bytes]:
    user, email, _phone, anonymous = JANE
    found = [user, email, email.lower(), "+33639987654", anonymous]
    found.append(hashlib.sha256(email.lower().encode()).hexdigest())
    return [n.lower().encode() for n in found]


def files_holding(data_dir: Path, wanted: list[bytes]) -> list[str]:
    holding = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes().lower()
        if any(n in data for n in wanted):
            holding.append(str(path.relative_to(data_dir)))
    return holding


@pytest.mark.slow
def test_erasure_leaves_no_byte_of_the_person_in_the_data_directory(runtime: Runtime) -> None:
    people(runtime)
    data_dir = runtime.settings.data_dir
    store = runtime.store
    # Other stores that name her: a reject file, a stored upload, a third-party feed row,
    # a destination dead letter, a lookalike score.
    (data_dir / "rejects").mkdir(exist_ok=True)
    (data_dir / "rejects" / "crm.rejects.csv").write_text(
        f"row,reason,email\n3,bad date,{JANE[1]}\n4,bad date,{BOB[1]}\n"
    )
    (data_dir / "uploads").mkdir(exist_ok=True)
    (data_dir / "uploads" / "crm.csv").write_text(f"email,name\n{JANE[1]},Jane\n{BOB[1]},Bob\n")
    store.execute(
        "INSERT INTO third_party_memberships VALUES ('acme', 'iab', '42', 'email', ?, "
        "now(), now() + INTERVAL 30 DAY)",
        [JANE[1].lower()],
    )
    assert files_holding(data_dir, needles()), "the person is on disk before the erasure"

    request = erasure.erase(runtime, "email:jane.doe@example.com")

    assert request.state == "done", request.reasons
    by_system = {r.system: r for r in request.receipts}
    assert by_system["table events"].removed == 3
    assert by_system["table third_party_memberships"].removed == 1
    assert by_system["files rejects/"].removed == 1
    assert by_system["files uploads/"].removed == 1
    assert by_system["proof"].status == "done"
    assert by_system["proof: tables"].status == "done"
    assert files_holding(data_dir, needles()) == []
    # Bob stays, everywhere.
    assert files_holding(data_dir, [BOB[1].encode()])
    assert store.fetch_one("SELECT count(*) FROM events")[0] == 1  # type: ignore[index]
    assert BOB[1] in (data_dir / "uploads" / "crm.csv").read_text()
    # A retry is the same request, and finds nothing more to remove.
    again = erasure.erase(runtime, "email:JANE.DOE@example.com")
    assert again.id == request.id and again.attempts == 2
    assert all(r.removed == 0 for r in again.receipts if r.kind in ("table", "files"))


@pytest.mark.slow
def test_a_suppressed_person_is_dropped_at_ingest_and_access_reports_everything(
    runtime: Runtime,
) -> None:
    people(runtime)
    report = access.access(runtime, f"user_id:{JANE[0]}")
    assert {i["type"] for i in report.identifiers} >= {"user_id", "email", "phone"}
    assert len(report.events) == 3
    assert report.profile is not None and report.profile["traits"]["firstName"] == "Jane"
    assert report.request.state == "done"

    suppressed = access.suppress(runtime, f"user_id:{JANE[0]}")
    assert suppressed.state == "done" and suppressed.receipts[0].removed >= 4
    matcher = PublishedSuppression(runtime.settings.suppression_path)
    again = rows(runtime, [
        {"type": "track", "userId": "U-JANE-42", "event": "Viewed", "messageId": "j9"},
        {"type": "track", "anonymousId": "x", "event": "Viewed", "messageId": "j10",
         "context": {"traits": {"phone": "+33639987654"}}},
        {"type": "track", "userId": BOB[0], "event": "Viewed", "messageId": "b9"},
    ])  # fmt: skip
    assert [matcher.drops(row) for row in again] == [True, True, False]
    # As the log loads and as files are imported, too (the writer's screen).
    runtime.writer.screen.screens[0]._checked_at = float("-inf")  # type: ignore[union-attr]
    before = runtime.store.fetch_one("SELECT count(*) FROM events")
    runtime.writer.write(again)
    after = runtime.store.fetch_one("SELECT count(*) FROM events")
    assert after[0] == before[0] + 1  # type: ignore[index]
    dropped = runtime.store.fetch_one(
        "SELECT count(*), max(length(payload)) FROM rejected WHERE code = 'suppressed'"
    )
    assert dropped == (2, 0)
    # The list holds no identifier in clear.
    published = runtime.settings.suppression_path.read_bytes().lower()
    assert not any(n in published for n in needles())


def test_the_log_files_are_scrubbed_in_place_without_moving_a_record(runtime: Runtime) -> None:
    people(runtime)
    log_dir = runtime.settings.log_dir
    before = {p: p.stat().st_size for p in log_dir.rglob("*.tlog")}
    erasure_subject = erasure.find(runtime.store, erasure.identifier_from_text(
        f"user_id:{JANE[0]}", None))  # fmt: skip
    with runtime.loader.held() as positions:
        scrubbed = erasure.scrub_log(log_dir, positions, erasure_subject.needles)
    assert scrubbed.rows == 3
    assert {p: p.stat().st_size for p in log_dir.rglob("*.tlog")} == before
    assert files_holding(log_dir, needles()) == []
    # The writer reopens the scrubbed segment as whole: no torn tail is cut.
    runtime.sink.log.stop()
    reopened = LogWriter(log_dir, "serve", max_queued_events=10, retry_after_seconds=1)
    assert reopened.torn_tails_cut == 0
    reopened.stop()


def test_a_scrub_interrupted_by_a_crash_is_finished_when_the_writer_opens(
    runtime: Runtime,
) -> None:
    people(runtime)
    runtime.sink.log.stop()
    writer_dir = runtime.settings.log_dir / "serve"
    number = segments.segment_numbers(writer_dir)[-1]
    path = segments.segment_path(writer_dir, number)
    data = path.read_bytes()
    start = len(records.SEGMENT_MAGIC)
    length, _, count = records.HEADER.unpack_from(data, start)
    payload = data[start + records.HEADER.size : start + records.HEADER.size + length]
    cleaned, _ = scrub.scrub_payload(payload, needles())
    frame = records.HEADER.pack(length, zlib.crc32(cleaned), count) + cleaned
    # The crash: the journal is written, the segment got half of the new frame.
    journal = scrub._JOURNAL_HEAD.pack(number, start, len(frame)) + frame
    (writer_dir / scrub.JOURNAL).write_bytes(journal + struct.pack("<I", zlib.crc32(frame)))
    with path.open("r+b") as handle:
        handle.seek(start)
        handle.write(frame[: len(frame) // 2])
    reopened = LogWriter(runtime.settings.log_dir, "serve", max_queued_events=10,
                         retry_after_seconds=1)  # fmt: skip
    assert reopened.torn_tails_cut == 0
    assert not (writer_dir / scrub.JOURNAL).exists()
    assert path.read_bytes()[start : start + len(frame)] == frame
    assert len(path.read_bytes()) == len(data)
    reopened.stop()
