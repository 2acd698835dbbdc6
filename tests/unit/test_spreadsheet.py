"""CSV cells a spreadsheet never runs as formulas (OWASP's CSV Injection rule)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera import spreadsheet
from tessera.events import rejects


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=cmd|' /c calc'!a0", "'=cmd|' /c calc'!a0"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("plain text", "plain text"),
        ("", ""),
        (42, 42),
        (None, None),
    ],
)
def test_safe_cell_quotes_what_starts_like_a_formula(value: object, written: object) -> None:
    assert spreadsheet.safe_cell(value) == written


@given(st.lists(st.lists(st.text(), min_size=1, max_size=4), min_size=1, max_size=5))
def test_no_written_cell_starts_like_a_formula(rows: list[list[str]]) -> None:
    out = io.StringIO()
    spreadsheet.writer(out).writerows(rows)
    for row in csv.reader(io.StringIO(out.getvalue())):
        for cell in row:
            assert not cell.startswith(spreadsheet.FORMULA_STARTS)


def test_reject_files_quote_hostile_rows(tmp_path: Path) -> None:
    written = rejects.write(tmp_path, "x.rejects.csv", [(2, "bad e-mail", "=HYPERLINK(1)")])
    assert written is not None
    with Path(written).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["line", "reason", "row"], ["2", "bad e-mail", "'=HYPERLINK(1)"]]
