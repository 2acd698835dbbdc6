"""Pages of a long list: a bounded `limit`, an opaque cursor, and the total.

Every list that can grow with the data (segment members, profile search, rejected
messages, the event log) answers one page at a time, in an order that is stable while
the data changes: keyset paging on a unique key (a profile id, a sequence number), so a
walk through every page sees each row that stays in the list exactly once, whatever
arrives meanwhile (offsets would skip or repeat rows as rows arrive before the offset).

The cursor is the last key of the page, tagged with the list it belongs to, in URL-safe
base64: opaque to clients (they send back what they got), checked when it comes back.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from tessera.errors import InvalidCursor, InvalidField
from tessera.results import Result


class Page(Result):
    """One page of a list: its rows, how many rows the whole list has now, and the
    cursor of the next page (None on the last page)."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    next_cursor: str | None


def check_limit(limit: int, maximum: int) -> int:
    """The page size asked for, or InvalidField naming the bounds."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidField(
            f"limit must be a whole number from 1 to {maximum:,}, got {limit!r}; "
            "follow next_cursor for the rest",
            field="limit",
            value=limit,
        )
    return limit


def encode_cursor(kind: str, key: str | int) -> str:
    """The cursor that resumes list `kind` after the row whose key is `key`."""
    raw = orjson.dumps([kind, key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None, key_type: type[str] | type[int]) -> Any:
    """The key a cursor of list `kind` resumes after (None without a cursor).

    Raises InvalidCursor when the text is not a cursor this list handed out.
    """
    if cursor is None or cursor == "":
        return None
    found = decode_cursor_of((kind,), cursor, key_type)
    return found[1]


def decode_cursor_of(
    kinds: tuple[str, ...], cursor: str, key_type: type[str] | type[int]
) -> tuple[str, Any]:
    """The kind (one of `kinds`) and key of a cursor, for a list that hands out cursors
    of more than one kind (the event log, walked backwards or forwards).

    Raises InvalidCursor when the text is not a cursor of one of these kinds.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except ValueError:  # not ASCII, not base64, not JSON: all ValueErrors
        decoded = None
    if (
        isinstance(decoded, list)
        and len(decoded) == 2
        and decoded[0] in kinds
        and type(decoded[1]) is key_type
    ):
        return str(decoded[0]), decoded[1]
    shown = cursor if len(cursor) <= 80 else cursor[:80] + "…"
    raise InvalidCursor(
        f"cursor {shown!r} is not a cursor of this list ({' or '.join(kinds)}); send back "
        "the next_cursor of the previous page unchanged, or leave it out for the first page",
        field="cursor",
        value=cursor,
    )


def page_of(rows: list[dict[str, Any]], *, limit: int, total: int, kind: str, key: str) -> Page:
    """A page from `limit + 1` rows fetched in key order: the extra row, if there, only
    says that another page follows (its cursor is the last kept row's key)."""
    more = len(rows) > limit
    kept = rows[:limit]
    next_cursor = encode_cursor(kind, kept[-1][key]) if more and kept else None
    return Page(items=kept, total=total, limit=limit, next_cursor=next_cursor)
