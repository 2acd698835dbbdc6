"""The segment use cases every edge offers (API, console, CLI), one function each.

Each finds what it needs itself, in particular the computed-trait names the checker
accepts, so no edge can pass the wrong set (the console once saved with none and
refused `computed.order_count` on Save after previewing it fine).
"""

from __future__ import annotations

from typing import Any

from tessera.context import Context
from tessera.identity.lookup import lookup
from tessera.paging import Page
from tessera.profiles import catalogue
from tessera.segments import service


def computed_names(context: Context) -> set[str]:
    """Every computed trait a segment may name: definitions, RFM scores, signals."""
    return catalogue.names(context.store, context.settings.computed_traits_file)


def create(context: Context, name: str, query: str) -> dict[str, Any]:
    """Check, backfill and save a new segment; its definition with its size."""
    return service.create(context.store, name, query, computed_names(context))


def update(context: Context, name: str, query: str) -> dict[str, Any]:
    """Change a segment's query; its members follow at once."""
    return service.update(context.store, name, query, computed_names(context))


def preview(context: Context, query: str, sample: int = 10) -> dict[str, Any]:
    """Size, sample, description and SQL of a query, without saving."""
    return service.preview(context.store, query, computed_names(context), sample=sample)


def listing(context: Context) -> list[dict[str, Any]]:
    return service.list_segments(context.store)


def show(context: Context, name: str) -> dict[str, Any]:
    return service.get(context.store, name)


def delete(context: Context, name: str) -> dict[str, str]:
    service.delete(context.store, name)
    return {"deleted": name}


def members(context: Context, name: str, limit: int, cursor: str | None = None) -> Page:
    return service.members(context.store, name, limit=limit, cursor=cursor)


def history(context: Context, name: str) -> dict[str, Any]:
    return service.history(context.store, name)


def overlap(context: Context) -> list[dict[str, Any]]:
    return service.overlap(context.store)


def why(context: Context, name: str, reference: str) -> dict[str, Any]:
    """Which conditions of the segment hold for the profile `reference` names
    (`TYPE:VALUE` or a profile id)."""
    profile_id = lookup(context.store, reference, context.settings.default_region)
    return service.why(context.store, name, profile_id)
