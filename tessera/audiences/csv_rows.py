"""Rows of an uploaded CSV as `csv.DictReader` gives them, including the ragged ones.

A row with more cells than the header keeps the extra cells in a list under the key None;
a row with fewer has None values. Both must reach the reject file as the row was written,
never crash the import that reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def raw_text(row: Mapping[Any, Any]) -> str:
    """The row's cells joined by commas, extra cells included, for a reject file."""
    cells: list[str] = []
    for value in row.values():
        if isinstance(value, list):
            cells.extend(str(cell) for cell in value)
        elif value is not None:
            cells.append(str(value))
    return ",".join(cells)


def shape_problem(row: Mapping[Any, Any]) -> str | None:
    """Why a row cannot be read against its header (more cells than columns), or None."""
    extra = row.get(None)
    if extra:
        return f"row has {len(extra)} more cell(s) than the header"
    return None
