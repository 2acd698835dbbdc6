"""Reject files: the rows an import could not use, each with its line and the reason, so
nothing handed to Tessera is dropped without a trace. Imports of events, taxonomies, feeds
and campaign results all write them the same way, with cells a spreadsheet never runs as
formulas (a rejected row is hostile input more often than not)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tessera import spreadsheet

HEADER = ("line", "reason", "row")


def write(folder: Path, file_name: str, rows: Iterable[tuple[int, str, str]]) -> str | None:
    """Write (line, reason, raw row) rows to `folder/file_name`; None when there are none."""
    rows = list(rows)
    if not rows:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name
    with target.open("w", newline="", encoding="utf-8") as handle:
        table = spreadsheet.writer(handle)
        table.writerow(HEADER)
        table.writerows(rows)
    return str(target)
