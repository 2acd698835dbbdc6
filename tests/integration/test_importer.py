"""File imports on a real store: CSV, JSON lines, Parquet; rejects; re-imports."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tessera.errors import InvalidMapping
from tessera.events.importer import import_file, load_mapping
from tessera.runtime import Runtime

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
