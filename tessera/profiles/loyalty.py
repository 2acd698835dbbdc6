"""Loyalty: points and a tier per person, from the orders' products and a rule file.

    points_per_euro:            # by category path; the longest prefix that matches wins
      default: 1
      Sport: 2
      Sport > Running: 3
    tiers:                      # the highest threshold reached is the tier
      Bronze: 0
      Silver: 500
      Gold: 2000

`tessera loyalty load FILE` checks and stores the rules; from then on the pipeline keeps
`loyalty_spend` (spend per category path of each person's orders, a built-in itemised
trait) and every refresh derives `loyalty_points` (whole points, rounded down) and
`loyalty_tier` from it. Pure but for `load` and `rules`, which read and write the store.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tessera.context import Context
from tessera.errors import InvalidField
from tessera.events.timestamps import iso_utc, utc_now
from tessera.profiles.computed import ComputedTrait
from tessera.results import Result
from tessera.store import Store

SPEND = ComputedTrait("loyalty_spend", "sum_by", "Order Completed", by="product.category")
NAMES = ("loyalty_points", "loyalty_tier")


class LoyaltyRules(BaseModel):
    """The rule file, checked: rates are points per euro (0 to 1,000), thresholds points."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points_per_euro: dict[str, float] = Field(
        default_factory=lambda: {"default": 1.0},
        description="category path (or 'default') → points per euro",
    )
    tiers: dict[str, int] = Field(description="tier name → the points it starts at")

    @field_validator("points_per_euro")
    @classmethod
    def _rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for path, rate in rates.items():
            if not math.isfinite(rate) or not 0 <= rate <= 1000:
                raise ValueError(f"rate {rate!r} for {path!r} must be from 0 to 1000")
        return {_path(k): v for k, v in rates.items()}

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: dict[str, int]) -> dict[str, int]:
        if not tiers:
            raise ValueError("name at least one tier, e.g. {Member: 0}")
        if any(points < 0 for points in tiers.values()):
            raise ValueError("tier thresholds are points from 0 up")
        return tiers

    def rate(self, category: str) -> float:
        """Points per euro for a category path: the longest matching prefix's rate."""
        best, length = self.points_per_euro.get("default", 0.0), -1
        for prefix, rate in self.points_per_euro.items():
            if prefix == "default":
                continue
            if (category == prefix or category.startswith(prefix + " > ")) and len(prefix) > length:
                best, length = rate, len(prefix)
        return best

    def points(self, spend: dict[str, float]) -> int:
        return math.floor(sum(self.rate(c) * v for c, v in spend.items()) + 1e-9)

    def tier(self, points: int) -> str | None:
        reached = [(t, name) for name, t in self.tiers.items() if points >= t]
        return max(reached)[1] if reached else None


def _path(text: str) -> str:
    return " > ".join(part.strip() for part in text.split(">") if part.strip()) or text


class LoyaltyLoaded(Result):
    """The loyalty rules in force."""

    points_per_euro: dict[str, float]
    tiers: dict[str, int]
    loaded_at: str | None


def parse(text: str) -> LoyaltyRules:
    """Rules from YAML text; InvalidField names what is wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidField(f"the loyalty rules are not valid YAML: {e}", field="rules") from None
    if isinstance(document, dict) and "loyalty" in document:
        document = document["loyalty"]
    return check(document)


def check(document: Any) -> LoyaltyRules:
    if not isinstance(document, dict):
        raise InvalidField(
            "loyalty rules are a mapping with points_per_euro and tiers", field="rules"
        )
    try:
        return LoyaltyRules.model_validate(document)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "rules"
        raise InvalidField(
            f"loyalty rules: {where}: {first['msg']}", field=where, value=first.get("input")
        ) from None


def load(store: Store, rules: LoyaltyRules) -> LoyaltyLoaded:
    """Store the rules (replacing any); the next refresh applies them."""
    moment = utc_now()
    store.execute(
        "INSERT OR REPLACE INTO loyalty_rules VALUES ('rules', ?, ?)",
        [rules.model_dump_json(), moment],
    )
    return LoyaltyLoaded(**rules.model_dump(), loaded_at=iso_utc(moment))


def rules(store: Store) -> LoyaltyRules | None:
    row = store.fetch_one("SELECT document FROM loyalty_rules WHERE name = 'rules'")
    return of_document(row[0]) if row else None


def of_document(document: str) -> LoyaltyRules:
    """The rules as `loyalty_rules.document` keeps them (also in a log export, for Spark)."""
    return LoyaltyRules.model_validate(orjson.loads(document))


def shown(store: Store) -> LoyaltyLoaded:
    row = store.fetch_one("SELECT document, loaded_at FROM loyalty_rules WHERE name = 'rules'")
    if row is None:
        return LoyaltyLoaded(points_per_euro={}, tiers={}, loaded_at=None)
    found = LoyaltyRules.model_validate(orjson.loads(row[0]))
    return LoyaltyLoaded(**found.model_dump(), loaded_at=iso_utc(row[1]))


def derive(rules: LoyaltyRules | None, traits: dict[str, Any]) -> dict[str, Any]:
    """A person's points and tier from their `loyalty_spend` (nothing without rules)."""
    if rules is None or SPEND.name not in traits:
        return {}
    spend = traits[SPEND.name] or {}
    points = rules.points(spend)
    return {"loyalty_points": points, "loyalty_tier": rules.tier(points)}


def define(context: Context, document: Any) -> LoyaltyLoaded:
    """Check and store the rules (YAML text or a mapping), then refresh computed traits so
    points and tiers are there at once (the spend per category is filled from the log the
    first time).

    Raises:
        InvalidField: the rules are malformed; nothing is stored."""
    rules = parse(document) if isinstance(document, str) else check(document)
    loaded = load(context.store, rules)
    context.pipeline.refresh_computed_traits()
    return loaded
