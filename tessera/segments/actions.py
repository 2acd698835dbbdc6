"""The segment use cases every edge offers (API, console, CLI), one function each.

Each finds what it needs itself, in particular the computed-trait names the checker
accepts, so no edge can pass the wrong set (the console once saved with none and
refused `computed.order_count` on Save after previewing it fine). Each returns a typed
result (tessera/results.py): the API serialises it, the console and the CLI read it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_serializer, field_validator

from tessera.catalog.keys import ProductKeys
from tessera.context import Context
from tessera.identity.lookup import lookup
from tessera.paging import Page
from tessera.profiles import catalogue
from tessera.profiles.consent import ENRICHMENT_PURPOSE
from tessera.results import Deleted, Result
from tessera.segments import service


class Segment(Result):
    """One segment: its definition, its size now and its status (ok, or failed with the
    reason and when)."""

    id: str
    name: str
    query: str
    description: str
    created_at: str | None
    updated_at: str | None
    evaluated_at: str | None
    tree: Any = Field(description="The parsed query, as JSON")
    size: int
    exposed: bool = Field(
        description="Exposed to the decision API: POST /v1/personalize answers its name to "
        "the visitors in it"
    )
    status: str = Field(description="ok, or failed (its last evaluation failed)")
    failure: str | None
    failed_at: str | None


class SegmentSummary(Result):
    """A segment in the list: name, query, size and status."""

    name: str
    description: str
    query: str
    evaluated_at: datetime | None
    size: int
    exposed: bool
    status: str
    failure: str | None
    failed_at: str | None

    @field_validator("evaluated_at")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        """Naive UTC as the store holds it, whether read from the store or parsed back
        from the API's `...Z` (the CLI prints the same either way)."""
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    @field_serializer("evaluated_at")
    def _utc(self, value: datetime | None) -> str | None:
        """The store's naive UTC time with its Z, as the document's date-time promises
        (a bare local-looking time failed the fuzz layer's schema check)."""
        return value.replace(tzinfo=None).isoformat() + "Z" if value else None


class Preview(Result):
    """What a query would select now, without saving it."""

    size: int
    sample: list[str] = Field(description="Some of the profile ids it selects")
    description: str
    tree: Any
    sql: str


class HistoryDay(Result):
    day: str
    change: int
    size: int


class History(Result):
    """A segment's size per day, from its entries and exits."""

    segment: str
    days: list[HistoryDay]


class Condition(Result):
    """One condition of a query and whether it holds; and/or/not list their parts."""

    condition: str
    holds: bool
    parts: list[Condition] | None = Field(default=None, exclude_if=lambda parts: parts is None)


class Why(Result):
    """Which conditions of a segment hold for one profile: the whole query first, and/or/not
    with their parts."""

    segment: str
    profile_id: str
    condition: str
    holds: bool
    parts: list[Condition] | None = Field(default=None, exclude_if=lambda parts: parts is None)


class Overlap(Result):
    """How many current members two segments share (a segment with itself: its size)."""

    first: str
    second: str
    both_count: int


def computed_names(context: Context) -> set[str]:
    """Every computed trait a segment may name: definitions, RFM scores, signals."""
    return catalogue.names(context.store, context.settings.computed_traits_file)


def enrichment_policy(context: Context) -> str:
    """The consent policy `has third_party` applies (third-party enrichment's purpose)."""
    return context.settings.consent_policy(ENRICHMENT_PURPOSE)


def create(context: Context, name: str, query: str, exposed: bool = False) -> Segment:
    """Check, backfill and save a new segment (exposed to the decision API or not); its
    definition with its size."""
    created = Segment(
        **service.create(
            context.store,
            name,
            query,
            computed_names(context),
            exposed=exposed,
            products=_keys(context),
            enrichment_policy=enrichment_policy(context),
        )
    )
    if exposed:
        context.definitions_changed()  # the decision API answers it from now on
    return created


def update(context: Context, name: str, query: str, exposed: bool | None = None) -> Segment:
    """Change a segment's query (and, when given, whether it is exposed to the decision
    API); its members follow at once."""
    service.update(
        context.store,
        name,
        query,
        computed_names(context),
        products=_keys(context),
        enrichment_policy=enrichment_policy(context),
    )
    if exposed is not None:
        service.set_exposed(context.store, name, exposed)
        context.definitions_changed()
    return show(context, name)


def expose(context: Context, name: str, exposed: bool = True) -> Segment:
    """Expose a segment to the decision API, or stop (`exposed=False`): the decision for a
    visitor in it names it (TESSERA_PERSONALIZE_EXPOSED_SEGMENTS exposes more, never
    fewer: a segment is answered when its flag or the setting exposes it)."""
    exposed_now = Segment(**service.set_exposed(context.store, name, exposed))
    context.definitions_changed()
    return exposed_now


def preview(context: Context, query: str, sample: int = 10) -> Preview:
    """Size, sample, description and SQL of a query, without saving."""
    found = service.preview(
        context.store,
        query,
        computed_names(context),
        sample=sample,
        products=_keys(context),
        enrichment_policy=enrichment_policy(context),
    )
    return Preview(**found)


def listing(context: Context) -> list[SegmentSummary]:
    return [SegmentSummary(**row) for row in service.list_segments(context.store)]


def show(context: Context, name: str) -> Segment:
    return Segment(**service.get(context.store, name))


def delete(context: Context, name: str) -> Deleted:
    service.delete(context.store, name)
    context.definitions_changed()  # an exposed one is answered no more
    return Deleted(deleted=name)


def members(context: Context, name: str, limit: int, cursor: str | None = None) -> Page:
    return service.members(context.store, name, limit=limit, cursor=cursor)


def history(context: Context, name: str) -> History:
    return History.model_validate(service.history(context.store, name))


def overlap(context: Context) -> list[Overlap]:
    return [Overlap(**row) for row in service.overlap(context.store)]


def why(context: Context, name: str, reference: str) -> Why:
    """Which conditions of the segment hold for the profile `reference` names
    (`TYPE:VALUE` or a profile id)."""
    profile_id = lookup(context.store, reference, context.settings.default_region)
    return Why.model_validate(
        service.why(
            context.store,
            name,
            profile_id,
            products=_keys(context),
            enrichment_policy=enrichment_policy(context),
        )
    )


def _keys(context: Context) -> ProductKeys:
    return ProductKeys.of_settings(context.settings)
