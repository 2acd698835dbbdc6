"""Reading the event log and the dead-letter table: counts, the newest events, rejects."""

from __future__ import annotations

from typing import Any

import orjson

from tessera.events import failures
from tessera.events.timestamps import iso_utc
from tessera.paging import Page, check_limit, decode_cursor, decode_cursor_of, page_of
from tessera.store import Store


def stats(store: Store) -> dict[str, Any]:
    """Totals for `tessera stats`: events, rejected, sources and per-source counts; what
    the pipeline could not use: events in its dead letters (`pipeline_failed`) and values
    sent as identifiers that cannot be one (`dropped_identifiers`, in the merge ledger)."""
    totals = store.fetch_one(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejected), "
        "(SELECT count(*) FROM sources), (SELECT max(received_at) FROM events), "
        "(SELECT coalesce(max(seq), 0) FROM events), "
        "(SELECT count(*) FROM identity_ledger WHERE kind = 'dropped'), "
        "(SELECT count(*) FROM rejected WHERE code = 'suppressed'), "
        "(SELECT count(*) FROM plan_violations)"
    )
    assert totals is not None
    per_source = store.fetch_all(
        "SELECT s.name, s.channel, count(e.seq) FROM sources s "
        "LEFT JOIN events e ON e.source_id = s.id GROUP BY s.name, s.channel ORDER BY s.name"
    )
    per_type = store.fetch_all("SELECT type, count(*) FROM events GROUP BY type ORDER BY type")
    return {
        "events": totals[0],
        "rejected": totals[1],
        "sources": totals[2],
        "last_event_at": iso_utc(totals[3]),
        "last_seq": totals[4],
        "pipeline_failed": failures.count(store),
        "dropped_identifiers": totals[5],
        "suppressed_events": totals[6],
        "plan_violations": totals[7],
        "by_source": [
            {"source": name, "channel": channel, "events": count}
            for name, channel, count in per_source
        ],
        "by_type": {kind: count for kind, count in per_type},
    }


def daily(store: Store, days: int = 30) -> list[dict[str, Any]]:
    """Events per day, per source and channel, over the last `days` days, by event time
    (skew-corrected, so live events land on the day they arrived and imported history on
    the day it happened)."""
    rows = store.fetch_all(
        "SELECT CAST(e.timestamp AS DATE) AS day, s.name, e.channel, count(*) FROM events e "
        "JOIN sources s ON s.id = e.source_id "
        "WHERE e.timestamp >= CAST(now() AS TIMESTAMP) - to_days(CAST(? AS INTEGER)) "
        "GROUP BY ALL ORDER BY 1, 2",
        [days],
    )
    return [
        {"day": day.isoformat(), "source": source, "channel": channel, "events": count}
        for day, source, channel, count in rows
    ]


EVENTS_PAGE_MAX = 1000
REJECTED_PAGE_MAX = 1000
_EVENT_COLUMNS = (
    "seq, source_id, channel, message_id, type, event, name, user_id, anonymous_id, email, "
    "phone, device_id, advertising_id, timestamp, original_timestamp, received_at, "
    "properties, traits, "
    # Tessera's notes on what it adjusted or ignored in the message (contract.py).
    "payload->'$.context.tessera' AS notes"
)


def tail(
    store: Store,
    *,
    limit: int = 20,
    source_id: str | None = None,
    after_seq: int | None = None,
    cursor: str | None = None,
) -> Page:
    """A page of the event log with its total (of the source, if one is given): the
    newest events, newest first; or, with `after_seq`, the events that follow that
    sequence number, oldest first (for reading the whole log in order, and live views).
    `next_cursor` continues in the same direction; sequence numbers are the keys, so
    events that arrive during a walk never shift it.

    Raises InvalidField for a limit outside 1 to EVENTS_PAGE_MAX, InvalidCursor for a
    cursor the log did not hand out.
    """
    check_limit(limit, EVENTS_PAGE_MAX)
    kind, key = ("events-after", after_seq) if after_seq is not None else ("events", None)
    if cursor:
        kind, key = decode_cursor_of(("events", "events-after"), cursor, int)
    where = ["source_id = $source"] if source_id is not None else []
    scope: dict[str, Any] = {"source": source_id} if source_id is not None else {}
    condition = [] if key is None else ["seq > $key" if kind == "events-after" else "seq < $key"]
    clause = f"WHERE {' AND '.join(where + condition)}" if where + condition else ""
    order = "ASC" if kind == "events-after" else "DESC"
    rows = store.fetch_dicts(
        f"SELECT {_EVENT_COLUMNS} FROM events {clause} ORDER BY seq {order} LIMIT $fetch",
        scope | {"fetch": limit + 1} | ({} if key is None else {"key": key}),
    )
    for row in rows:
        for column in ("timestamp", "original_timestamp", "received_at"):
            row[column] = iso_utc(row[column])
        for column in ("properties", "traits", "notes"):
            row[column] = orjson.loads(row[column]) if row[column] else None
    total = store.fetch_one(
        f"SELECT count(*) FROM events {'WHERE source_id = $source' if where else ''}", scope
    )
    return page_of(rows, limit=limit, total=total[0] if total else 0, kind=kind, key="seq")


def rejected(
    store: Store, *, limit: int = 50, source_id: str | None = None, cursor: str | None = None
) -> Page:
    """A page of the dead-lettered messages, newest first, with their reason and raw
    payload, and the total (of the source, if one is given).

    Raises InvalidField for a limit outside 1 to REJECTED_PAGE_MAX, InvalidCursor for a
    cursor this list did not hand out.
    """
    check_limit(limit, REJECTED_PAGE_MAX)
    before = decode_cursor("rejected", cursor, int)
    where = ["source_id = $source"] if source_id is not None else []
    scope: dict[str, Any] = {"source": source_id} if source_id is not None else {}
    condition = [] if before is None else ["id < $before"]
    clause = f"WHERE {' AND '.join(where + condition)}" if where + condition else ""
    rows = store.fetch_dicts(
        "SELECT id, source_id, received_at, code, field, reason, message_id, payload "
        f"FROM rejected {clause} ORDER BY id DESC LIMIT $fetch",
        scope | {"fetch": limit + 1} | ({} if before is None else {"before": before}),
    )
    for row in rows:
        row["received_at"] = iso_utc(row["received_at"])
    total = store.fetch_one(
        f"SELECT count(*) FROM rejected {'WHERE source_id = $source' if where else ''}", scope
    )
    return page_of(rows, limit=limit, total=total[0] if total else 0, kind="rejected", key="id")
