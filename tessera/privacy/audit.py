"""The audit log: who did what, when, from where; append-only with a hash chain.

Each row's hash is SHA-256 over the previous row's hash and the row's fields, so editing,
deleting or inserting a row breaks every hash after it and `verify` names the first row
that no longer matches. The personal values (`target`, `detail`) enter the hash through
their own digests (`target_digest`, `detail_digest`): an erasure may blank them
(`redact`) and the chain still verifies, while any other change to them shows.

Other modules write an entry with `record(store, actor, action, target, detail)`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import Field

from tessera.errors import InvalidField
from tessera.paging import Page, check_limit, decode_cursor, page_of
from tessera.results import Result
from tessera.store import Store


def utc_now() -> datetime:
    """Now in UTC, naive, as the store keeps times (privacy stays below `events`, which
    uses its keys, so it keeps its own two time helpers)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso_utc(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


#: The previous hash of the first row.
GENESIS = "0" * 64
#: What a blanked personal value reads as.
REDACTED = "[erased]"
_LOCK = threading.Lock()


class AuditEntry(Result):
    """One audit row."""

    seq: int
    at: str
    actor: str
    role: str | None
    action: str = Field(description="e.g. 'POST /api/segments', 'sign-in', 'profile.view'")
    target: str | None
    detail: dict[str, Any] | None
    address: str | None = Field(description="The client's IP address")
    outcome: str = Field(description="'ok', 'denied', 'failed' or an HTTP status")
    redacted: bool
    hash: str


class Verified(Result):
    """What `verify` found: the rows checked and the first that no longer matches."""

    rows: int
    intact: bool
    first_broken_seq: int | None
    reason: str | None


class Exported(Result):
    """An export of the audit log: how many entries, written where."""

    rows: int
    path: str


def _digest(value: str | None) -> str:
    return hashlib.sha256((value or "").encode()).hexdigest()


def _row_hash(
    previous: str,
    seq: int,
    at: datetime,
    actor: str,
    role: str | None,
    action: str,
    address: str | None,
    outcome: str,
    target_digest: str,
    detail_digest: str,
) -> str:
    fields = [previous, seq, at.isoformat(), actor, role, action, address, outcome,
              target_digest, detail_digest]  # fmt: skip
    return hashlib.sha256(orjson.dumps(fields)).hexdigest()


def record(
    store: Store,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    *,
    role: str | None = None,
    address: str | None = None,
    outcome: str = "ok",
    at: datetime | None = None,
) -> int:
    """Append one entry and return its seq.

    Args:
        actor: who: a user name, 'admin-token', 'token:<id>', 'cli'.
        action: what: 'POST /api/segments', 'sign-in', 'profile.view', 'export'...
        target: what it was done to (may be personal: an identifier); erasable.
        detail: more about it (may be personal); erasable.
    """
    at = at or utc_now()
    detail_text = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode() if detail else None
    with _LOCK, store.transaction():
        last = store.fetch_one("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        seq, previous = (last[0] + 1, last[1]) if last else (1, GENESIS)
        target_digest, detail_digest = _digest(target), _digest(detail_text)
        row_hash = _row_hash(previous, seq, at, actor, role, action, address, outcome,
                             target_digest, detail_digest)  # fmt: skip
        store.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?, ?)",
            [
                *(seq, at, actor, role, action, target, detail_text, address, outcome),
                *(target_digest, detail_digest, previous, row_hash),
            ],
        )
    return seq


_COLUMNS = (
    "seq, recorded_at, actor, role, action, target, detail, address, outcome, target_digest, "
    "detail_digest, redacted, previous_hash, hash"
)


def verify(store: Store) -> Verified:
    """Recompute the chain from the first row; the first row whose hash, link or personal
    values no longer match is named."""
    previous, rows = GENESIS, 0
    for row in _all_rows(store):
        (seq, at, actor, role, action, target, detail, address, outcome, target_digest,
         detail_digest, redacted, previous_hash, row_hash) = row  # fmt: skip
        rows += 1
        reason = None
        if previous_hash != previous:
            reason = "its link to the previous row is broken (a row was removed or inserted)"
        elif not redacted and (target_digest, detail_digest) != (_digest(target), _digest(detail)):
            reason = "its target or detail was changed"
        elif row_hash != _row_hash(previous, seq, at, actor, role, action, address, outcome,
                                   target_digest, detail_digest):  # fmt: skip
            reason = "its fields were changed"
        if reason:
            return Verified(rows=rows, intact=False, first_broken_seq=seq, reason=reason)
        previous = row_hash
    return Verified(rows=rows, intact=True, first_broken_seq=None, reason=None)


def _all_rows(store: Store, batch: int = 10_000) -> Iterator[tuple[Any, ...]]:
    after = 0
    while True:
        rows = store.fetch_all(
            f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", [after, batch]
        )
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1][0]


_MENTIONS = (
    "NOT redacted AND len(list_filter(?, lambda v: "
    "contains(coalesce(target, '') || coalesce(detail, ''), v))) > 0"
)


def redact(store: Store, values: list[str]) -> int:
    """Blank the personal values (target, detail) of every entry that mentions one of
    `values` (an erasure); the entries and the chain stay. Returns how many were blanked."""
    values = [v for v in values if v]
    if not values:
        return 0
    with _LOCK, store.transaction():
        row = store.fetch_one(f"SELECT count(*) FROM audit_log WHERE {_MENTIONS}", [values])
        store.execute(
            "UPDATE audit_log SET target = CASE WHEN target IS NULL THEN NULL ELSE ? END, "
            "detail = CASE WHEN detail IS NULL THEN NULL ELSE ? END, redacted = TRUE "
            f"WHERE {_MENTIONS}",
            [REDACTED, orjson.dumps(REDACTED).decode(), values],
        )
    return int(row[0]) if row else 0


def listing(
    store: Store,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """A page of entries, newest first, filtered by actor, action (a prefix), target (a
    fragment) and time."""
    check_limit(limit, 1000)
    before = decode_cursor("audit", cursor, int)
    filters: list[tuple[str, Any]] = [
        (clause, value)
        for clause, value in (
            ("actor = ?", actor),
            ("starts_with(action, ?)", action),
            ("contains(coalesce(target, ''), ?)", target),
            ("recorded_at >= ?", since),
            ("recorded_at < ?", until),
        )
        if value not in (None, "")
    ]
    where = " AND ".join(["TRUE", *(clause for clause, _ in filters)])
    params = [value for _, value in filters]
    count = store.fetch_one(f"SELECT count(*) FROM audit_log WHERE {where}", params)
    rows = store.fetch_all(
        f"SELECT {_COLUMNS} FROM audit_log WHERE {where} AND seq < ? ORDER BY seq DESC LIMIT ?",
        [*params, before if before is not None else 2**62, limit + 1],
    )
    entries = [_entry(row).model_dump() for row in rows]
    return page_of(entries, limit=limit, total=int(count[0]) if count else 0, kind="audit",
                   key="seq")  # fmt: skip


def export_lines(store: Store) -> Iterator[bytes]:
    """Every entry as JSON lines, oldest first, with the chain's fields to verify it
    elsewhere."""
    for row in _all_rows(store):
        entry = _entry(row).model_dump()
        entry["previous_hash"] = row[12]
        entry["target_digest"], entry["detail_digest"] = row[9], row[10]
        yield orjson.dumps(entry) + b"\n"


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    (seq, at, actor, role, action, target, detail, address, outcome, _target_digest,
     _detail_digest, redacted, _previous, row_hash) = row  # fmt: skip
    parsed = orjson.loads(detail) if detail else None
    return AuditEntry(
        seq=seq,
        at=iso_utc(at) or "",
        actor=actor,
        role=role,
        action=action,
        target=target,
        detail=parsed if isinstance(parsed, dict) else ({"value": parsed} if parsed else None),
        address=address,
        outcome=outcome,
        redacted=redacted,
        hash=row_hash,
    )


def parse_time(text: str | None, field: str) -> datetime | None:
    """An ISO date or time from a filter, or None."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
    except (ValueError, OverflowError) as e:
        raise InvalidField(
            f"{field} must be an ISO date or time like 2026-03-01 or 2026-03-01T09:00, got "
            f"{text!r}",
            field=field,
            value=text,
        ) from e
