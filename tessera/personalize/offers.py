"""Offers: content or promotions shown to the people a condition selects.

An offer has a condition in the segment language (checked like a segment's, with the same
messages; empty: everyone), a priority and a weight (for the strategies, `strategies.py`),
a channel (`any` or the channel a decision is asked for), a validity window and an
optional cap: at most N shows per person per day. Its `content` is free JSON the page
renders (a headline, an image, a coupon code).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from tessera.context import Context
from tessera.errors import Conflict, InvalidField, NotFound
from tessera.events.sources import CHANNELS as SOURCE_CHANNELS
from tessera.events.timestamps import iso_utc, utc_now
from tessera.results import Deleted, Result
from tessera.segments import actions as segment_actions
from tessera.segments import service
from tessera.segments.describe import describe
from tessera.segments.tree import Node, from_json, to_json
from tessera.store import Store

#: `any`, or the channel a decision is asked for: a source channel, or sms and push.
CHANNELS = ("any", *SOURCE_CHANNELS, "sms", "push")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_COLUMNS = ("name, title, content, condition, priority, weight, channel, starts_at, ends_at, "
            "cap_per_day, created_at, updated_at, tree")  # fmt: skip


class OfferSpec(BaseModel):
    """An offer as a user writes it (the API's body, the CLI's options)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["travel-spring"], description="a-z, 0-9, '.', '_', '-'")
    title: str = Field(examples=["Spring getaways: 15% off cabin suitcases"])
    content: dict[str, Any] = Field(
        default_factory=dict,
        description="What the page shows, free JSON",
        examples=[{"headline": "15% off", "coupon": "SPRING15"}],
    )
    condition: str = Field(
        default="",
        description="Who is eligible, in the segment language (empty: everyone)",
        examples=['computed.travel_reader = true or has third_party "travel"'],
    )
    priority: int = Field(default=0, ge=-1000, le=1000)
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    channel: str = Field(default="any", description=", ".join(CHANNELS))
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cap_per_day: int | None = Field(
        default=None, ge=1, le=10_000, description="At most this many shows per person per day"
    )


class Offer(Result):
    name: str
    title: str
    content: dict[str, Any]
    condition: str
    description: str
    priority: int
    weight: float
    channel: str
    starts_at: str | None
    ends_at: str | None
    cap_per_day: int | None
    created_at: str | None
    updated_at: str | None


def create(context: Context, spec: OfferSpec) -> Offer:
    """Check and save a new offer."""
    tree = _checked(context, spec)
    if _exists(context.store, spec.name):
        raise Conflict(
            f"an offer named {spec.name!r} exists; delete it first or pick another name",
            field="name",
            value=spec.name,
        )
    now = utc_now()
    context.store.execute(
        "INSERT INTO offers (id, name, title, content, condition, tree, priority, weight, "
        "channel, starts_at, ends_at, cap_per_day, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [str(uuid.uuid4()), spec.name, spec.title, orjson.dumps(spec.content).decode(),
         spec.condition.strip(), orjson.dumps(to_json(tree) if tree else None).decode(),
         spec.priority, spec.weight, spec.channel, _naive(spec.starts_at),
         _naive(spec.ends_at), spec.cap_per_day, now, now],
    )  # fmt: skip
    context.definitions_changed()
    return get(context.store, spec.name)


def list_all(store: Store) -> list[Offer]:
    return [_offer(row) for row in store.fetch_all(f"SELECT {_COLUMNS} FROM offers ORDER BY name")]


def get(store: Store, name: str) -> Offer:
    row = store.fetch_one(f"SELECT {_COLUMNS} FROM offers WHERE name = ?", [name])
    if row is None:
        known = [offer.name for offer in list_all(store)]
        raise NotFound(
            f"no offer named {name!r}; "
            + (f"there are: {', '.join(known)}" if known else "create one with "
               "`tessera offers create NAME --title TEXT --condition QUERY`"),
            field="name",
            value=name,
        )  # fmt: skip
    return _offer(row)


def delete(context: Context, name: str) -> Deleted:
    get(context.store, name)
    context.store.execute("DELETE FROM offers WHERE name = ?", [name])
    context.definitions_changed()
    return Deleted(deleted=name)


def trees(store: Store) -> list[tuple[Offer, Node | None]]:
    """Every offer with its checked condition (None: everyone), for the decisions."""
    found = []
    for row in store.fetch_all(f"SELECT {_COLUMNS} FROM offers ORDER BY name"):
        stored = orjson.loads(row[12])
        found.append((_offer(row), from_json(stored) if stored else None))
    return found


def _checked(context: Context, spec: OfferSpec) -> Node | None:
    if not _NAME.match(spec.name):
        raise InvalidField(
            f"offer name {spec.name!r} must be 1-64 of a-z, 0-9, '.', '_' or '-', starting "
            "with a letter or digit",
            field="name",
            value=spec.name,
        )
    if not spec.title.strip() or len(spec.title) > 500:
        raise InvalidField("an offer's title must be 1-500 characters", field="title",
                           value=spec.title)  # fmt: skip
    if spec.channel not in CHANNELS:
        raise InvalidField(
            f"channel {spec.channel!r} must be one of {', '.join(CHANNELS)}",
            field="channel",
            value=spec.channel,
        )
    starts, ends = _naive(spec.starts_at), _naive(spec.ends_at)
    if spec.starts_at and spec.ends_at and starts and ends and ends <= starts:
        raise InvalidField(
            f"ends_at {spec.ends_at.isoformat()} must come after starts_at "
            f"{spec.starts_at.isoformat()}",
            field="ends_at",
            value=spec.ends_at.isoformat(),
        )
    if len(orjson.dumps(spec.content)) > 32 * 1024:
        raise InvalidField("an offer's content must be at most 32 KiB of JSON", field="content")
    if not spec.condition.strip():
        return None
    return service.understand(
        context.store, spec.condition, segment_actions.computed_names(context)
    )


def _naive(moment: datetime | None) -> datetime | None:
    """UTC without a zone, as the store keeps times."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _exists(store: Store, name: str) -> bool:
    return store.fetch_one("SELECT 1 FROM offers WHERE name = ?", [name]) is not None


def _offer(row: tuple[Any, ...]) -> Offer:
    stored = orjson.loads(row[12])
    return Offer(
        name=row[0], title=row[1], content=orjson.loads(row[2]), condition=row[3],
        description=describe(from_json(stored)) if stored else "everyone",
        priority=row[4], weight=row[5], channel=row[6], starts_at=iso_utc(row[7]),
        ends_at=iso_utc(row[8]), cap_per_day=row[9], created_at=iso_utc(row[10]),
        updated_at=iso_utc(row[11]),
    )  # fmt: skip
