"""Data-subject requests as records: their state machine and their receipts.

A request is received, then running, then `done` or `partly_failed` (with the reasons).
Its id is derived from its kind and the salted hash of the identifier, so filing the same
request again is a retry of the same request: it runs every step again (each step is
idempotent: what is gone counts 0) and records a new attempt's receipts. The subject is
kept masked (`je…t@`) and hashed, never in clear: the record outlives the person's data.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

import orjson

from tessera.errors import NotFound
from tessera.events.timestamps import iso_utc as _iso_or_none
from tessera.governance.suppression import key
from tessera.identity.identifiers import Identifier, mask
from tessera.results import Result
from tessera.store import Store

log = logging.getLogger(__name__)
Kind = Literal["access", "erase", "suppress"]
KINDS: tuple[str, ...] = ("access", "erase", "suppress")
#: receipt statuses that leave a request `done`; any other makes it `partly_failed`
SETTLED = ("done", "unsupported")


class Receipt(Result):
    """What one attempt did to one system: the rows, records, files or messages removed
    (or sent), its status (done, failed, unsupported) and what to know about it."""

    system: str
    kind: str
    removed: int
    status: str
    detail: str
    done_at: str


class PrivacyRequest(Result):
    """A data-subject request and the receipts of its last attempt."""

    id: str
    kind: str
    subject: str
    state: str
    received_at: str
    updated_at: str
    attempts: int
    reasons: list[str]
    receipts: list[Receipt]


def iso_utc(value: datetime) -> str:
    return _iso_or_none(value) or ""


def request_id(salt: str, kind: str, identifier: Identifier) -> str:
    return "dsr_" + key(salt, f"{kind}|{identifier}")[:20]


def begin(
    store: Store, salt: str, kind: str, identifier: Identifier, now: datetime
) -> tuple[str, int]:
    """Record the request as running (received first when new); its id and attempt."""
    identifier_id = request_id(salt, kind, identifier)
    row = store.fetch_one("SELECT attempts FROM privacy_requests WHERE id = ?", [identifier_id])
    if row is None:
        store.execute(
            "INSERT INTO privacy_requests VALUES (?, ?, ?, ?, 'received', ?, ?, 0, '[]')",
            [
                identifier_id,
                kind,
                f"{identifier.type}:{mask(identifier.value)}",
                key(salt, str(identifier)),
                now,
                now,
            ],
        )
        attempt = 1
    else:
        attempt = int(row[0]) + 1
    store.execute(
        "UPDATE privacy_requests SET state = 'running', attempts = ?, updated_at = ? WHERE id = ?",
        [attempt, now, identifier_id],
    )
    return identifier_id, attempt


def finish(
    store: Store, identifier_id: str, attempt: int, receipts: list[Receipt], now: datetime
) -> None:
    """Store the attempt's receipts and settle the state from them."""
    with store.transaction():
        for position, receipt in enumerate(receipts):
            store.execute(
                "INSERT INTO privacy_receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    identifier_id,
                    attempt,
                    position,
                    receipt.system,
                    receipt.kind,
                    receipt.removed,
                    receipt.status,
                    receipt.detail,
                    receipt.done_at,
                ],
            )
        reasons = [f"{r.system}: {r.detail}" for r in receipts if r.status not in SETTLED]
        state = "done" if not reasons else "partly_failed"
        store.execute(
            "UPDATE privacy_requests SET state = ?, reasons = ?, updated_at = ? WHERE id = ?",
            [state, orjson.dumps(reasons).decode(), now, identifier_id],
        )


def get(store: Store, identifier_id: str) -> PrivacyRequest:
    row = store.fetch_one(
        "SELECT id, kind, subject, state, received_at, updated_at, attempts, reasons "
        "FROM privacy_requests WHERE id = ?",
        [identifier_id],
    )
    if row is None:
        raise NotFound(f"no privacy request {identifier_id!r}; see `tessera privacy requests`")
    receipts = [
        Receipt(
            system=r[0], kind=r[1], removed=r[2], status=r[3], detail=r[4], done_at=iso_utc(r[5])
        )
        for r in store.fetch_all(
            "SELECT system, kind, removed, status, detail, done_at FROM privacy_receipts "
            "WHERE request_id = ? AND attempt = ? ORDER BY position",
            [identifier_id, row[6]],
        )
    ]
    return PrivacyRequest(
        id=row[0],
        kind=row[1],
        subject=row[2],
        state=row[3],
        received_at=iso_utc(row[4]),
        updated_at=iso_utc(row[5]),
        attempts=row[6],
        reasons=orjson.loads(row[7]),
        receipts=receipts,
    )


def list_all(store: Store, limit: int = 100) -> list[PrivacyRequest]:
    """The latest requests first, each with its last attempt's receipts."""
    ids = store.fetch_all(
        "SELECT id FROM privacy_requests ORDER BY updated_at DESC, id LIMIT ?", [limit]
    )
    return [get(store, row[0]) for row in ids]


def receipt(
    system: str,
    kind: str,
    removed: int,
    now: datetime,
    *,
    status: str = "done",
    detail: str = "",
) -> Receipt:
    return Receipt(
        system=system,
        kind=kind,
        removed=removed,
        status=status,
        detail=detail,
        done_at=iso_utc(now),
    )


def audit_request(context: object, request: PrivacyRequest) -> None:
    """THE call site for the audit log (issue 15, part 1: tessera/privacy/audit): every
    data-subject request passes here once it is settled, to be recorded there (who, when,
    what) when it lands. Until then the request's own record and receipts are the trail.
    Ids and states only: the subject is masked and personal values never reach a log."""
    del context
    log.info("privacy request %s (%s): %s", request.id, request.kind, request.state)
