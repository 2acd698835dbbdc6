"""`tessera log export`: partitioned Parquet with a toc, incremental, resumable, idempotent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pytest

from tessera.events import export
from tessera.runtime import Runtime
from tests.integration.helpers import send


def _track(n: int, day: int) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": f"u{n}",
        "messageId": f"m{n}",
        "timestamp": f"2026-03-{day:02d}T10:00:00Z",
        "properties": {"revenue": n},
    }


def _exported_seqs(lake: Path) -> list[int]:
    table = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table()
    return sorted(table.column("seq").to_pylist())


def test_export_partitions_by_day_and_source_with_a_toc(runtime: Runtime, tmp_path: Path) -> None:
    send(runtime, [_track(1, 1), _track(2, 2)], source="web")
    send(runtime, [_track(3, 2)], source="crm")
    lake = tmp_path / "lake"

    result = export.export(runtime.store, str(lake))

    assert result.events == 3 and (result.from_seq, result.to_seq) == (0, 3)
    assert {(f.day, f.rows) for f in result.files} == {("2026-03-01", 1), ("2026-03-02", 1)}
    assert len({f.source_id for f in result.files}) == 2
    toc = orjson.loads((lake / "toc.json").read_bytes())
    assert toc["exported_seq"] == 3
    listed = {f["path"] for run in toc["runs"] for f in run["files"]}
    assert listed == {str(p.relative_to(lake)) for p in lake.glob("events/**/*.parquet")}
    assert result.inputs["sources"] == 2
    assert (lake / "inputs" / "sources.parquet").exists()


def test_a_large_export_is_written_a_seq_range_at_a_time(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays bounded: each range of SEQS_PER_CHUNK seqs is its own files; together
    they hold every event once, and the toc lists them all."""
    monkeypatch.setattr(export, "SEQS_PER_CHUNK", 2)
    send(runtime, [_track(n, 1 + n % 2) for n in range(1, 6)])
    lake = tmp_path / "lake"

    result = export.export(runtime.store, str(lake))

    assert result.events == 5 and _exported_seqs(lake) == [1, 2, 3, 4, 5]
    chunks = {f.path.rsplit("/", 1)[1].split("-")[2] for f in result.files}
    assert chunks == {"00000", "00001", "00002"}
    for file in result.files:  # a file holds seqs of one range: (0, 2], (2, 4] or (4, 6]
        assert (file.min_seq - 1) // 2 == (file.max_seq - 1) // 2, file
    listed = {f["path"] for run in export.read_toc(str(lake))["runs"] for f in run["files"]}
    assert listed == {str(p.relative_to(lake)) for p in lake.glob("events/**/*.parquet")}


def test_export_is_incremental_and_idempotent(runtime: Runtime, tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    send(runtime, [_track(1, 1)])
    export.export(runtime.store, lake)
    again = export.export(runtime.store, lake)
    assert again.events == 0 and again.files == []
    send(runtime, [_track(2, 1)])
    more = export.export(runtime.store, lake)

    assert (more.from_seq, more.to_seq, more.events) == (1, 2, 1)
    assert _exported_seqs(Path(lake)) == [1, 2]
    assert len(export.read_toc(lake)["runs"]) == 2


def test_a_run_that_died_before_its_toc_is_redone_without_duplicates(
    runtime: Runtime, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    send(runtime, [_track(1, 1)])
    export.export(runtime.store, str(lake))
    send(runtime, [_track(2, 1), _track(3, 5)])
    # Run 2 wrote a file and died before its toc: the file is not listed.
    leftover = lake / "events" / "day=2026-03-05" / "source_id=x" / "part-00002-00000-0.parquet"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes((next(lake.glob("events/**/part-00001-00000-0.parquet"))).read_bytes())

    export.export(runtime.store, str(lake))

    assert not leftover.exists()
    assert _exported_seqs(lake) == [1, 2, 3]
