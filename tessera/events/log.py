"""Reading the event log and the dead-letter table: counts, the newest events, rejects."""

from __future__ import annotations

from typing import Any

import orjson

from tessera.events import failures
from tessera.events.timestamps import iso_utc
from tessera.store import Store


def stats(store: Store) -> dict[str, Any]:
    """Totals for `tessera stats`: events, rejected, sources and per-source counts; what
    the pipeline could not use: events in its dead letters (`pipeline_failed`) and values
    sent as identifiers that cannot be one (`dropped_identifiers`, in the merge ledger)."""
    totals = store.fetch_one(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejected), "
        "(SELECT count(*) FROM sources), (SELECT max(received_at) FROM events), "
        "(SELECT coalesce(max(seq), 0) FROM events), "
        "(SELECT count(*) FROM identity_ledger WHERE kind = 'dropped')"
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


def tail(
    store: Store, *, limit: int = 20, source_id: str | None = None, after_seq: int | None = None
) -> list[dict[str, Any]]:
    """The newest events, newest first; or, with `after_seq`, the events that follow
    that sequence number, oldest first (for paging through the log and live views)."""
    conditions: list[str] = []
    params: list[object] = []
    if source_id is not None:
        conditions.append("source_id = ?")
        params.append(source_id)
    if after_seq is not None:
        conditions.append("seq > ?")
        params.append(after_seq)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    order = "ASC" if after_seq is not None else "DESC"
    rows = store.fetch_dicts(
        "SELECT seq, source_id, channel, message_id, type, event, name, user_id, anonymous_id, "
        "email, phone, device_id, advertising_id, timestamp, original_timestamp, received_at, "
        f"properties, traits FROM events {where} ORDER BY seq {order} LIMIT ?",
        [*params, limit],
    )
    for row in rows:
        for column in ("timestamp", "original_timestamp", "received_at"):
            row[column] = iso_utc(row[column])
        for column in ("properties", "traits"):
            row[column] = orjson.loads(row[column]) if row[column] else None
    return rows


def rejected(
    store: Store, *, limit: int = 50, source_id: str | None = None
) -> list[dict[str, Any]]:
    """The newest dead-lettered messages with their reason and raw payload."""
    where, params = ("WHERE source_id = ?", [source_id]) if source_id else ("", [])
    rows = store.fetch_dicts(
        "SELECT id, source_id, received_at, code, field, reason, message_id, payload "
        f"FROM rejected {where} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    )
    for row in rows:
        row["received_at"] = iso_utc(row["received_at"])
    return rows


