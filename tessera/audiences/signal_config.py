"""The signal use cases every edge offers: show the configuration, load one (then refresh)."""

from __future__ import annotations

from typing import Any

from tessera.audiences import signals
from tessera.context import Context
from tessera.events.timestamps import utc_now
from tessera.results import Result


class SignalConfig(Result):
    """The signal traits and the page categories in force."""

    signals: list[dict[str, Any]]
    categories: list[dict[str, Any]]


class SignalsLoaded(Result):
    """How many signal traits and page categories a document set."""

    signals: int
    categories: int


def show(context: Context) -> SignalConfig:
    """The signal traits and the page categories in force."""
    return SignalConfig(
        signals=signals.definitions(context.store),
        categories=signals.categories(context.store),
    )


def load(context: Context, document: object) -> SignalsLoaded:
    """Replace the signal traits and page categories, then compute the traits at once so
    a segment may use them straight away."""
    result = signals.load_config(context.store, document, utc_now())
    context.pipeline.refresh_computed_traits()
    return SignalsLoaded(**result)
