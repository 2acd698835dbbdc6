"""The delivery log: per destination and minute, what happened to its messages.

A worker counts in memory (`Tally`) and writes what it counted since the last write with
its position, in one transaction (`record`): counts are added to the minute's row, the
latency percentiles of the minute are replaced by those of every answer the worker saw in
it. The last errors (status and an excerpt of the answer) are kept, the newest
`KEPT_ERRORS` per destination. `report` reads it all back for `tessera destinations
deliveries NAME`, `GET /api/destinations/{name}/deliveries` and the console's chart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import Field

from tessera.activation import destinations
from tessera.events.timestamps import iso_utc, utc_now
from tessera.results import Result
from tessera.store import Store

KEPT_ERRORS = 20
COUNTS = ("delivered", "retried", "failed", "suppressed", "dead_lettered")


@dataclass
class Minute:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    latencies: list[float] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))


@dataclass(frozen=True)
class Failure:
    at: datetime
    status: int | None
    error: str
    body: str | None


class Tally:
    """One worker's counts, by minute, not yet written (or written in part)."""

    def __init__(self) -> None:
        self.minutes: dict[datetime, Minute] = defaultdict(Minute)
        self.errors: list[Failure] = []

    def count(self, what: str, n: int = 1, at: datetime | None = None) -> None:
        if n:
            self.minutes[_minute(at or utc_now())].counts[what] += n

    def answered(self, seconds: float, at: datetime | None = None) -> None:
        self.minutes[_minute(at or utc_now())].latencies.append(seconds * 1000)

    def failed(self, status: int | None, error: str, body: str = "") -> None:
        self.errors.append(Failure(utc_now(), status, error, body))
        del self.errors[:-KEPT_ERRORS]


def record(store: Store, destination_id: str, tally: Tally) -> None:
    """Write what `tally` counted since its last write (call inside the worker's
    transaction, so the counts move with the position)."""
    current = _minute(utc_now())
    for minute, counts in list(tally.minutes.items()):
        fresh = {k: counts.counts[k] - counts.written[k] for k in COUNTS}
        p50, p95, p99 = percentiles(counts.latencies)
        if any(fresh.values()) or counts.latencies:
            store.execute(
                "INSERT INTO destination_deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (destination_id, minute) DO UPDATE SET "
                "delivered = delivered + excluded.delivered, retried = retried + "
                "excluded.retried, failed = failed + excluded.failed, suppressed = "
                "suppressed + excluded.suppressed, dead_lettered = dead_lettered + "
                "excluded.dead_lettered, p50_ms = coalesce(excluded.p50_ms, p50_ms), "
                "p95_ms = coalesce(excluded.p95_ms, p95_ms), "
                "p99_ms = coalesce(excluded.p99_ms, p99_ms)",
                [destination_id, minute, *(fresh[k] for k in COUNTS), p50, p95, p99],
            )
        counts.written = dict(counts.counts)
        if minute < current:
            del tally.minutes[minute]
    for failure in tally.errors:
        store.execute(
            "INSERT INTO destination_errors VALUES (?, ?, ?, ?, ?)",
            [destination_id, failure.at, failure.status, failure.error, failure.body],
        )
    if tally.errors:
        store.execute(
            "DELETE FROM destination_errors WHERE destination_id = ? AND failed_at < (SELECT "
            "min(failed_at) FROM (SELECT failed_at FROM destination_errors WHERE "
            "destination_id = ? ORDER BY failed_at DESC LIMIT ?))",
            [destination_id, destination_id, KEPT_ERRORS],
        )
    tally.errors.clear()


def percentiles(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """p50, p95 and p99 (nearest rank) of `values`, or Nones when there are none."""
    if not values:
        return None, None, None
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(p * len(ordered) + 0.5) - 1))], 2)

    return rank(0.50), rank(0.95), rank(0.99)


class DeliveryMinute(Result):
    """What happened to a destination's messages in one minute, and how fast it answered."""

    minute: str | None
    delivered: int
    retried: int
    failed: int
    suppressed: int
    dead_lettered: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class DeliveryError(Result):
    """One of the last errors: when, the status (None without an answer), why, and an
    excerpt of the answer."""

    at: str | None
    status: int | None
    error: str
    body: str | None


class Report(Result):
    """A destination's delivery log over the last `minutes` minutes."""

    destination: str
    kind: str
    enabled: bool
    position: int | None = Field(description="The last event of the log it was given")
    log_end: int
    behind: int = Field(description="Events of the log not given to it yet")
    totals: dict[str, int] = Field(description="Per count (delivered, retried...), the sum")
    minutes: list[DeliveryMinute]
    last_errors: list[DeliveryError]
    dead_letters: int


def report(store: Store, name: str, minutes: int = 60) -> Report:
    destination = destinations.get(store, name)
    since = utc_now() - timedelta(minutes=minutes)
    rows = store.fetch_all(
        "SELECT minute, delivered, retried, failed, suppressed, dead_lettered, p50_ms, "
        "p95_ms, p99_ms FROM destination_deliveries WHERE destination_id = ? AND minute >= ? "
        "ORDER BY minute",
        [destination.id, _minute(since)],
    )
    per_minute = [
        DeliveryMinute(minute=iso_utc(r[0]), **dict(zip(COUNTS, r[1:6], strict=True)),
                       p50_ms=r[6], p95_ms=r[7], p99_ms=r[8])
        for r in rows
    ]  # fmt: skip
    totals = {k: sum(int(getattr(m, k)) for m in per_minute) for k in COUNTS}
    errors = store.fetch_all(
        "SELECT failed_at, status, error, body FROM destination_errors "
        "WHERE destination_id = ? ORDER BY failed_at DESC LIMIT ?",
        [destination.id, KEPT_ERRORS],
    )
    position_row = store.fetch_one(
        "SELECT event_seq FROM destination_positions WHERE destination_id = ?", [destination.id]
    )
    end = store.fetch_one("SELECT coalesce(max(seq), 0) FROM events")
    dead = store.fetch_one(
        "SELECT count(*) FROM destination_dead_letters WHERE destination_id = ?",
        [destination.id],
    )
    position = position_row[0] if position_row else None
    log_end = int(end[0]) if end else 0
    return Report(
        destination=name, kind=destination.kind, enabled=destination.enabled,
        position=position, log_end=log_end, behind=max(0, log_end - (position or 0)),
        totals=totals, minutes=per_minute,
        last_errors=[DeliveryError(at=iso_utc(a), status=s, error=e, body=b)
                     for a, s, e, b in errors],
        dead_letters=int(dead[0]) if dead else 0,
    )  # fmt: skip


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def totals(store: Store) -> list[tuple[str, int, int, int]]:
    """Per destination (by name): messages delivered, retried and dead-lettered since it
    was created, from the delivery log (the metrics' counters)."""
    rows = store.fetch_all(
        "SELECT d.name, coalesce(sum(l.delivered), 0), coalesce(sum(l.retried), 0), "
        "coalesce(sum(l.dead_lettered), 0) FROM destinations d "
        "LEFT JOIN destination_deliveries l ON l.destination_id = d.id "
        "GROUP BY d.name ORDER BY d.name"
    )
    return [(str(name), int(a), int(b), int(c)) for name, a, b, c in rows]
