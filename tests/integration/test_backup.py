"""Backups on real files, without a server: what the store holds and what the log's files
hold past it both come back; a record a collector was half-way through writing is left out
(it was never acknowledged), and the restored directory loads the rest once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tessera.errors import Conflict, InvalidField
from tessera.eventlog import LogWriter, segments
from tessera.events.contract import Envelope, EventRow, check_message
from tessera.events.timestamps import now_micros
from tessera.operations import backup
from tessera.runtime import Runtime
from tessera.settings import Settings


def rows(ids: list[str], source_id: str) -> list[EventRow]:
    envelope = Envelope(source_id, "web", now_micros())
    return [
        check_message({"type": "track", "event": "e", "userId": "u", "messageId": m}, envelope,
                      default_type=None, max_bytes=32768)
        for m in ids
    ]  # fmt: skip


def test_a_backup_holds_the_store_and_the_whole_records_past_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    runtime = Runtime.open(settings)
    source = runtime.sources.create("web", "web").source
    collector = LogWriter(settings.log_dir, "collector-0", max_queued_events=1000,
                          retry_after_seconds=1)  # fmt: skip
    collector.write(rows(["loaded-1", "loaded-2"], source.id))
    runtime.loader.catch_up()  # these two are in the store
    collector.write(rows(["pending-1"], source.id))  # acknowledged, not loaded yet
    collector.stop()
    segment = segments.segment_path(settings.log_dir / "collector-0", 1)
    with segment.open("ab") as torn:  # a write cut short: never acknowledged
        torn.write(b"\x00\x01\x02 half a record")

    taken = backup.to_folder(runtime, tmp_path / "backup")
    runtime.close()
    assert taken.last_seq == 2 and taken.log_files == 1
    manifest = orjson.loads((tmp_path / "backup" / "backup.json").read_bytes())
    assert manifest["schema_version"] == taken.schema_version > 0
    copied = tmp_path / "backup" / "log" / "collector-0" / segment.name
    assert copied.stat().st_size == segment.stat().st_size - len(b"\x00\x01\x02 half a record")
    with pytest.raises(Conflict, match="not empty"):
        backup.prepare(tmp_path / "backup", settings)
    with pytest.raises(InvalidField, match="inside the data directory"):
        backup.prepare(settings.data_dir / "backups", settings)

    restored = Settings(data_dir=tmp_path / "restored")
    assert backup.restore(tmp_path / "backup", restored).files >= 2
    again = Runtime.open(restored)  # loads pending-1 from the restored log, once
    try:
        ids = [r[0] for r in again.store.fetch_all("SELECT message_id FROM events ORDER BY seq")]
        assert ids == ["loaded-1", "loaded-2", "pending-1"]
    finally:
        again.close()
