"""Segments whose evaluation failed, with the reason: one bad segment never stops the
others.

A segment saved by an older version may hold a value its SQL cannot run with (a date
that does not exist, say), or its tree may no longer compile. Evaluation then records
the segment as failed here, leaves its membership as it was, and carries on with the
others; the list, the API and the console show the reason. The record goes when the
segment is updated or evaluates again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tessera.errors import TesseraError
from tessera.events.timestamps import iso_utc
from tessera.segments.literals import ValueProblem
from tessera.store import STORE_TROUBLE, QueryFailed, Store

log = logging.getLogger(__name__)

#: What evaluating one segment can raise because of that segment: its SQL refused by
#: DuckDB, its stored tree unreadable (ValueError, TypeError, KeyError) or too deep.
SEGMENT_FAULTS: tuple[type[BaseException], ...] = (
    QueryFailed, TesseraError, ValueError, TypeError, KeyError, RecursionError,
)  # fmt: skip
#: ...but not these: the database's trouble (a write conflict, the disk), raised on so the
#: pipeline retries, never recorded against a segment.
NOT_SEGMENT_FAULTS = STORE_TROUBLE
_REASON_LENGTH = 500


def reason(error: BaseException) -> str:
    """The first line of the error, with its kind when it comes from the database or
    Python (`ConversionException: ...`): what the list and the console show."""
    lines = str(error).strip().splitlines() or [""]
    text = lines[0]
    if len(text) > _REASON_LENGTH:
        text = text[:_REASON_LENGTH] + "..."
    if isinstance(error, ValueProblem | TesseraError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def record(store: Store, segment_id: str, name: str, error: BaseException, moment: str) -> None:
    """Mark the segment failed (outside any transaction: the failed one rolled back).
    Logged when it starts failing or fails differently, not at every refresh."""
    text = reason(error)
    previous = store.fetch_one(
        "SELECT reason FROM segment_failures WHERE segment_id = ?", [segment_id]
    )
    store.execute(
        "INSERT OR REPLACE INTO segment_failures VALUES (?, ?, ?)", [segment_id, moment, text]
    )
    if previous is not None and previous[0] == text:
        return
    # The error text may quote profile data (a value DuckDB could not convert): the
    # log gets its kind only; the reason is in the store, for the admin surfaces.
    log.warning(
        "segment %r failed to evaluate (%s); it is marked failed and the others carry on",
        name,
        type(error).__name__,
    )


def failing(store: Store) -> set[str]:
    """The ids of the segments marked failed now."""
    return {row[0] for row in store.fetch_all("SELECT segment_id FROM segment_failures")}


def clear(store: Store, segment_ids: list[str]) -> None:
    """These segments evaluated: no longer failed."""
    store.execute(
        "DELETE FROM segment_failures WHERE segment_id IN (SELECT unnest($ids))",
        {"ids": segment_ids},
    )


def of(store: Store, segment_id: str) -> dict[str, Any]:
    """{"status": "ok"|"failed", "failure": reason or None, "failed_at": time or None}."""
    row = store.fetch_one(
        "SELECT reason, failed_at FROM segment_failures WHERE segment_id = ?", [segment_id]
    )
    return status(row[0] if row else None, row[1] if row else None)


def status(failure: str | None, failed_at: datetime | None) -> dict[str, Any]:
    return {
        "status": "failed" if failure else "ok",
        "failure": failure,
        "failed_at": iso_utc(failed_at) if failed_at else None,
    }
