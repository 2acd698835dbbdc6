"""What a decision answers, how decisions are recorded, and the lift of each offer.

Every decision is recorded (which offer, why, which variant, what the person was eligible
for), so results are attributed: `lift` compares, per offer, the people who were shown it
with the people the experiment held out although they were eligible, on a conversion event
after their first decision, like a campaign's lift against its holdout
(tessera/audiences/campaigns.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from tessera.errors import InvalidField
from tessera.events.timestamps import iso_utc
from tessera.personalize.recommendations import RecommendedProduct
from tessera.personalize.strategies import HOLDOUT, Strategy
from tessera.results import Result
from tessera.store import Store

MAX_ID_CHARS = 200


class DecisionRequest(BaseModel):
    """Who is asking (a browser's anonymousId, a signed-in userId, or both) and where."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    anonymous_id: str | None = Field(default=None, alias="anonymousId", max_length=MAX_ID_CHARS)
    user_id: str | None = Field(default=None, alias="userId", max_length=MAX_ID_CHARS)
    channel: str = Field(default="web", max_length=40)
    n: int | None = Field(default=None, ge=0, le=50, description="How many recommendations")
    page: dict[str, Any] = Field(
        default_factory=dict,
        description="The page: url, path, referrer, category (a product category here "
        "narrows the popular products a visitor without history sees)",
    )
    strategy: Strategy | None = Field(default=None, description="Override the server's")


class DecidedOffer(Result):
    name: str
    title: str
    content: dict[str, Any]
    channel: str
    variant: str
    reason: str


class Decision(Result):
    """The answer of the decision API: only what may be shown to the visitor's browser."""

    personal: bool = Field(description="False: the default answer (unknown, or no consent)")
    reason: str
    traits: dict[str, Any] = Field(description="The exposed traits (an allow-list)")
    segments: list[str] = Field(description="The exposable segments the person is in")
    offers: list[DecidedOffer]
    variant: str = Field(description="The strategy's variant: priority, weighted, holdout...")
    recommendations: list[RecommendedProduct]
    best_channel: str | None
    best_hour: int | None = Field(description="The best hour of the week, 0 = Monday 00:00 UTC")
    best_time: str | None = Field(default=None, description='The same, as "Monday 07:00 UTC"')
    decided_at: str


class RecordedDecision(Result):
    decided_at: str | None
    profile_id: str | None
    visitor: str
    channel: str
    strategy: str
    offer: str | None
    variant: str
    reason: str
    eligible: list[str]
    recommendations: list[str]
    personal: bool


class OfferLift(Result):
    """One offer's results: people shown it and people held out although eligible, and how
    many of each did the conversion event after their first decision."""

    offer: str
    event: str
    shown: int
    shown_converted: int
    holdout: int
    holdout_converted: int
    shown_rate: float | None
    holdout_rate: float | None
    lift: float | None


Record = tuple[Any, ...]


def save(store: Store, records: list[Record]) -> None:
    """Append decisions (decided_at, profile_id, visitor, source_id, channel, strategy,
    offer, variant, reason, eligible JSON, recommendations JSON, personal)."""
    if not records:
        return
    columns = list(zip(*records, strict=True))
    store.execute(
        "INSERT INTO decisions SELECT nextval('decision_ids'), * FROM (SELECT "
        "unnest($1), unnest($2), unnest($3), unnest($4), unnest($5), unnest($6), "
        "unnest($7), unnest($8), unnest($9), unnest($10), unnest($11), unnest($12))",
        {str(i + 1): list(column) for i, column in enumerate(columns)},
    )


def recent(store: Store, limit: int = 50, profile_id: str | None = None) -> list[RecordedDecision]:
    if not 1 <= limit <= 1000:
        raise InvalidField(f"limit {limit!r} must be 1 to 1000", field="limit", value=limit)
    where, parameters = ("WHERE profile_id = ?", [profile_id]) if profile_id else ("", [])
    rows = store.fetch_all(
        "SELECT decided_at, profile_id, visitor, channel, strategy, offer, variant, reason, "
        f"eligible, recommendations, personal FROM decisions {where} ORDER BY id DESC LIMIT ?",
        [*parameters, limit],
    )
    return [
        RecordedDecision(
            decided_at=iso_utc(r[0]),
            profile_id=r[1],
            visitor=r[2],
            channel=r[3],
            strategy=r[4],
            offer=r[5],
            variant=r[6],
            reason=r[7],
            eligible=orjson.loads(r[8]),
            recommendations=orjson.loads(r[9]),
            personal=r[10],
        )
        for r in rows
    ]


def today_counts(store: Store, today: datetime) -> dict[tuple[str, str], int]:
    """Shows per (profile, offer) since `today` (midnight UTC), for the caps."""
    return {
        (row[0], row[1]): int(row[2])
        for row in store.fetch_all(
            "SELECT profile_id, offer, count(*) FROM decisions WHERE decided_at >= ? "
            "AND offer IS NOT NULL AND profile_id IS NOT NULL GROUP BY ALL",
            [today],
        )
    }


def lift(store: Store, offer: str | None = None, event: str = "Order Completed") -> list[OfferLift]:
    """Per offer (or one): shown against held out, converted after the first decision."""
    rows = store.fetch_all(
        """
        WITH d AS (
          SELECT coalesce(p.merged_into, d.profile_id) AS profile_id, d.decided_at, d.offer,
                 d.variant, from_json(d.eligible, '["VARCHAR"]') AS eligible
          FROM decisions d LEFT JOIN profiles p ON p.profile_id = d.profile_id
          WHERE d.profile_id IS NOT NULL
        ), exposures AS (
          SELECT offer, profile_id, min(decided_at) AS first_at, 'shown' AS arm FROM d
          WHERE offer IS NOT NULL GROUP BY ALL
          UNION ALL
          SELECT offer, profile_id, min(decided_at), 'holdout' FROM (
            SELECT unnest(eligible) AS offer, profile_id, decided_at FROM d
            WHERE variant = $holdout
          ) GROUP BY ALL
        ), timed AS (
          SELECT x.offer, x.profile_id, x.arm, bool_or(c.at >= x.first_at) AS did
          FROM exposures x LEFT JOIN (
            SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.timestamp AS at
            FROM events e JOIN event_profiles ep ON ep.seq = e.seq
            LEFT JOIN profiles p ON p.profile_id = ep.profile_id
            WHERE e.type = 'track' AND e.event = $event
          ) c ON c.profile_id = x.profile_id
          GROUP BY ALL
        )
        SELECT offer, count(*) FILTER (WHERE arm = 'shown'),
               count(*) FILTER (WHERE arm = 'shown' AND did),
               count(*) FILTER (WHERE arm = 'holdout'),
               count(*) FILTER (WHERE arm = 'holdout' AND did)
        FROM timed WHERE $offer IS NULL OR offer = $offer GROUP BY offer ORDER BY offer
        """,
        {"holdout": HOLDOUT, "event": event, "offer": offer},
    )
    found = []
    for name, shown, shown_converted, held, held_converted in rows:
        shown_rate = round(shown_converted / shown, 4) if shown else None
        holdout_rate = round(held_converted / held, 4) if held else None
        found.append(
            OfferLift(
                offer=name,
                event=event,
                shown=shown,
                shown_converted=shown_converted,
                holdout=held,
                holdout_converted=held_converted,
                shown_rate=shown_rate,
                holdout_rate=holdout_rate,
                lift=round(shown_rate / holdout_rate - 1, 4)
                if shown_rate is not None and holdout_rate
                else None,
            )
        )
    return found
