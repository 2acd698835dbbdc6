"""Hypothesis over the importers on a real store: CSV and JSON-lines files of random cells
(odd unicode, quotes, delimiters, line breaks, long cells, deep nesting, huge numbers)
never abort an import, and every row is accounted for: imported, already there, or
rejected with its line and reason."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.events.importer import ImportSummary, import_file, load_mapping
from tessera.events.sources import Source
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN

MAPPING = load_mapping(
    """
type: track
event_column: what
timestamp: at
identifiers: {userId: id, email: mail}
traits: {note: note}
properties: {amount: {column: amount, type: number}, count: {column: count, type: integer},
             paid: {column: paid, type: boolean}, day: {column: day, type: date}}
"""
)
COLUMNS = ["id", "mail", "what", "at", "note", "amount", "count", "paid", "day"]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=15)
cells = st.one_of(
    odd_text,
    st.sampled_from(["", " ", '"', '""', ",", ";", "\t", "\n", "\r\n", "=1+1", "nan", "inf",
                     "1e999", "2024-02-30", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
                     "123456789012345678901234567890", "-0", "true", "u1", "a@b.co"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=100_000, max_value=140_000).map(lambda size: "x" * size),
)  # fmt: skip
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        odd_text,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(odd_text, inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, Source, Path]]:
    folder = tmp_path_factory.mktemp("import-fuzz")
    runtime = Runtime.open(Settings(data_dir=folder / "data", admin_token=ADMIN_TOKEN))
    source = runtime.sources.create("fuzzed-files", "crm").source
    yield runtime, source, folder
    runtime.close()


def run(shared: tuple[Runtime, Source, Path], path: Path) -> ImportSummary:
    runtime, source, _ = shared
    return import_file(
        store=runtime.store,
        writer=runtime.writer,
        source=source,
        path=path,
        mapping=MAPPING,
        rejects_dir=runtime.settings.rejects_dir,
    )


def accounted_for(summary: ImportSummary, rows: int) -> None:
    assert summary.status == "done"
    assert summary.rows == rows
    assert summary.accepted + summary.duplicates + summary.rejected == rows
    if summary.rejected:
        with open(summary.reject_file or "", encoding="utf-8", newline="") as handle:
            rejected = list(csv.DictReader(handle))
        assert len(rejected) == summary.rejected
        assert all(row["line"].isdigit() and row["reason"] for row in rejected)


@FUZZ
@given(
    rows=st.lists(st.lists(cells, min_size=len(COLUMNS), max_size=len(COLUMNS)), max_size=6),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_any_csv_cells_are_imported_or_rejected_row_by_row(
    shared: tuple[Runtime, Source, Path], rows: list[list[str]], delimiter: str
) -> None:
    path = shared[2] / "fuzzed.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        table = csv.writer(handle, delimiter=delimiter)
        table.writerow(COLUMNS)
        table.writerows(rows)
    # A row of blank cells may be written as a blank line, which readers skip.
    blank = sum(1 for row in rows if all(cell == "" for cell in row))
    summary = run(shared, path)
    assert summary.rows in (len(rows), len(rows) - blank)
    accounted_for(summary, summary.rows)


@st.composite
def json_lines(draw: st.DrawFn) -> bytes:
    """One line: a random object over the mapped columns, sometimes nested far too deep,
    sometimes not JSON at all."""
    kind = draw(st.sampled_from(["row", "row", "deep", "garbage", "scalar"]))
    if kind == "garbage":
        return draw(st.binary(max_size=30)).replace(b"\n", b" ").replace(b"\r", b" ")
    if kind == "scalar":
        return json.dumps(draw(json_values)).encode()
    row: dict[str, Any] = draw(
        st.fixed_dictionaries({}, optional=dict.fromkeys(COLUMNS, json_values))
    )
    text = json.dumps(row).encode()  # the standard library writes integers of any size
    if kind == "deep":
        levels = draw(st.integers(min_value=60, max_value=1500))
        deep = b"[" * levels + b"1" + b"]" * levels
        text = b'{"note": ' + deep + (b", " + text[1:] if row else b"}")
    return text


@FUZZ
@given(lines=st.lists(json_lines(), max_size=6))
def test_any_json_lines_are_imported_or_rejected_line_by_line(
    shared: tuple[Runtime, Source, Path], lines: list[bytes]
) -> None:
    path = shared[2] / "fuzzed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    kept = sum(1 for line in lines if line.strip())
    accounted_for(run(shared, path), kept)
