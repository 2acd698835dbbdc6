"""File imports on a real store: CSV, JSON lines, Parquet; rejects; re-imports."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tessera.errors import InvalidImportFile, InvalidMapping
from tessera.events.importer import import_file, list_imports, load_mapping, record_start
from tessera.runtime import Runtime
from tessera.settings import Settings

MAPPING = """
type: track
event: Order Completed
timestamp: at
identifiers: {email: email, loyalty_id: card}
properties:
  revenue: {column: total, type: number}
"""


def run(runtime: Runtime, path: Path, mapping: str = MAPPING):  # type: ignore[no-untyped-def]
    source = (
        runtime.sources.get("shops")
        if runtime.sources.list()
        else runtime.sources.create("shops", "pos").source
    )
    return import_file(
        store=runtime.store,
        writer=runtime.writer,
        source=source,
        path=path,
        mapping=load_mapping(mapping),
        rejects_dir=runtime.settings.rejects_dir,
    )


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_csv_import_with_rejects_and_idempotent_reimport(runtime: Runtime, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "pos.csv",
        [
            ["email", "card", "total", "at"],
            ["a@x.fr", "LC1", "10.5", "2024-03-01T10:00:00"],
            ["", "", "3", "2024-03-01T10:00:00"],  # no identifier
            ["b@x.fr", "", "abc", "2024-03-01T10:00:00"],  # bad number
            ["c@x.fr", "LC3", "7", "not a date"],  # bad time
            ["a@x.fr", "LC1", "10.5", "2024-03-01T10:00:00"],  # identical row: a second sale
        ],
    )
    summary = run(runtime, path)
    assert (summary.rows, summary.accepted, summary.rejected) == (5, 2, 3)
    with open(summary.reject_file or "") as handle:
        rejects = list(csv.DictReader(handle))
    assert [r["line"] for r in rejects] == ["3", "4", "5"]
    assert "no identifier" in rejects[0]["reason"]
    assert "column 'total' value 'abc' is not a number" in rejects[1]["reason"]
    again = run(runtime, path)
    assert (again.accepted, again.duplicates) == (0, 2)
    row = runtime.store.fetch_one(
        "SELECT count(*), sum(CAST(properties->>'revenue' AS DOUBLE)) FROM events"
    )
    assert row == (2, 21.0)


def test_semicolon_csv_is_sniffed(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "pos.csv"
    path.write_text("email;card;total;at\na@x.fr;LC1;1;2024-01-01\n")
    assert run(runtime, path).accepted == 1


def test_jsonl_import_rejects_bad_lines(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "pos.jsonl"
    path.write_text(
        '{"email": "a@x.fr", "card": "1", "total": 2, "at": "2024-01-01"}\n{not json\n["a list"]\n'
    )
    summary = run(runtime, path)
    assert (summary.accepted, summary.rejected) == (1, 2)


def test_parquet_import(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "pos.parquet"
    pq.write_table(
        pa.table(
            {
                "email": ["a@x.fr", "b@x.fr"],
                "card": ["1", None],
                "total": [1.5, 2.0],
                "at": ["2024-01-01", "2024-01-02"],
            }
        ),
        path,
    )
    summary = run(runtime, path)
    assert summary.accepted == 2
    assert runtime.store.fetch_one("SELECT count(*) FROM events WHERE email = 'b@x.fr'") == (1,)


def test_mapping_naming_a_missing_column_stops_before_importing(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "pos.csv", [["mail", "total", "at"], ["a", "1", "2024-01-01"]])
    with pytest.raises(InvalidMapping, match="'card', 'email'"):
        run(runtime, path)
    assert runtime.store.fetch_one("SELECT count(*) FROM events") == (0,)


IDENTIFY = "identifiers: {userId: id}\ntraits: {note: note}\n"


def rejects_of(summary) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    with open(summary.reject_file or "", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_cell_longer_than_the_csv_module_default_is_imported(
    runtime: Runtime, tmp_path: Path
) -> None:
    # 131,072 characters is Python's csv default: a longer cell aborted the file (a 500).
    note = "n" * 200_000
    path = write_csv(tmp_path / "crm.csv", [["id", "note"], ["u1", note], ["u2", "short"]])
    summary = run(runtime, path, IDENTIFY)
    assert (summary.accepted, summary.rejected) == (2, 0)
    stored = runtime.store.fetch_one(
        "SELECT length(traits->>'note') FROM events WHERE user_id = 'u1'"
    )
    assert stored == (200_000,)


@pytest.mark.parametrize("quoted", [False, True])
def test_csv_cell_longer_than_a_message_rejects_only_its_row(
    runtime: Runtime, tmp_path: Path, quoted: bool
) -> None:
    huge = ('"' + "x\n" * 600_000 + '"') if quoted else "x" * 1_200_000
    path = tmp_path / "crm.csv"
    path.write_text(f"id,note\nu1,a\nu2,{huge}\nu3,b\nu4,c\n", encoding="utf-8")
    summary = run(runtime, path, IDENTIFY)
    assert (summary.rows, summary.accepted, summary.rejected) == (4, 3, 1)
    (rejected,) = rejects_of(summary)
    assert rejected["line"] == "3" and "longer than 1,048,576 characters" in rejected["reason"]
    users = runtime.store.fetch_all("SELECT user_id FROM events ORDER BY user_id")
    assert users == [("u1",), ("u3",), ("u4",)]


def test_jsonl_line_nested_too_deep_is_a_rejected_row(runtime: Runtime, tmp_path: Path) -> None:
    # 300 levels: orjson reads it but cannot write it, which aborted the import (a 500).
    deep = "[" * 300 + "]" * 300
    path = tmp_path / "crm.jsonl"
    path.write_text(f'{{"id": "u1"}}\n{{"id": "u2", "note": {deep}}}\n{{"id": "u3"}}\n')
    summary = run(runtime, path, IDENTIFY)
    assert (summary.accepted, summary.rejected) == (2, 1)
    (rejected,) = rejects_of(summary)
    assert rejected["line"] == "2" and "more than 64 levels" in rejected["reason"]
    assert "nested deeper than 64 levels" in rejected["row"]


def test_jsonl_big_integer_ids_keep_every_digit(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "crm.jsonl"
    path.write_text(
        '{"id": 123456789012345678901234567890}\n{"id": 123456789012345678901234567891}\n'
    )
    summary = run(runtime, path, IDENTIFY)
    assert summary.accepted == 2
    users = runtime.store.fetch_all("SELECT user_id FROM events ORDER BY user_id")
    assert users == [("123456789012345678901234567890",), ("123456789012345678901234567891",)]


def test_garbage_parquet_is_named_by_its_upload_name(runtime: Runtime, tmp_path: Path) -> None:
    saved = tmp_path / "tmpk3j2h1.parquet"
    saved.write_bytes(b"this is not parquet at all")
    with pytest.raises(InvalidImportFile) as caught:
        import_file(
            store=runtime.store,
            writer=runtime.writer,
            source=runtime.sources.create("crm", "crm").source,
            path=saved,
            mapping=load_mapping(IDENTIFY),
            rejects_dir=runtime.settings.rejects_dir,
            file_name="customers.parquet",
        )
    assert "customers.parquet is not a readable Parquet file" in caught.value.message
    assert "tmpk3j2h1" not in caught.value.message


def test_import_left_running_by_a_stopped_process_is_marked_interrupted(
    settings: Settings,
) -> None:
    first = Runtime.open(settings)
    record_start(first.store, "imp_killed", first.sources.create("crm", "crm").source, "a.csv")
    first.close()  # as if kill -9 had stopped it: nothing marked it finished
    second = Runtime.open(settings)
    try:
        (found,) = list_imports(second.store)
    finally:
        second.close()
    assert found["status"] == "interrupted" and found["finished_at"] is not None
    assert "stopped before it finished" in found["reason"]


def test_delimiter_is_read_from_the_header_not_fooled_by_cells(
    runtime: Runtime, tmp_path: Path
) -> None:
    # csv.Sniffer, reading the data rows, took the commas in these cells for the delimiter.
    path = tmp_path / "crm.csv"
    path.write_text('id;note\nu1;"a","b","c"\nu2;"d","e"\n')
    assert run(runtime, path, IDENTIFY).accepted == 2
