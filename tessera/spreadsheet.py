"""CSV files that are safe to open in a spreadsheet.

Every CSV Tessera writes (audience exports, reject files) ends up in Excel, LibreOffice
or Google Sheets sooner or later, and a cell that starts with `=`, `+`, `-` or `@` (or a
tab or carriage return before one) is run there as a formula: `=HYPERLINK(...)` leaks
data, `=cmd|' /c calc'!A0` starts a program. OWASP's rule ("CSV Injection") is to prefix
such a cell with a single quote, which spreadsheets show as text and never evaluate.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

#: The characters a spreadsheet reads as the start of a formula (OWASP, CSV Injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class RowWriter(Protocol):
    """What `csv.writer` offers, for type hints."""

    def writerow(self, row: Iterable[Any], /) -> Any: ...

    def writerows(self, rows: Iterable[Iterable[Any]], /) -> None: ...


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet will never evaluate it: a text starting like a formula
    gets a leading single quote; anything else (numbers, None, other text) is unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _SafeWriter:
    def __init__(self, handle: Any) -> None:
        self._table = csv.writer(handle)

    def writerow(self, row: Iterable[Any], /) -> Any:
        return self._table.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]], /) -> None:
        for row in rows:
            self.writerow(row)


def writer(handle: Any) -> RowWriter:
    """A `csv.writer` on `handle` that passes every cell through `safe_cell`."""
    return _SafeWriter(handle)
