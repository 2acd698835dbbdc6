"""The computed-trait use cases every edge offers: list, define (then refresh), delete."""

from __future__ import annotations

from typing import Any

from tessera.context import Context
from tessera.profiles import catalogue


def listing(context: Context) -> list[dict[str, Any]]:
    """Every definition: those in the settings' file and those defined here."""
    traits = catalogue.definitions(context.store, context.settings.computed_traits_file)
    return [t.to_dict() for t in traits]


def define(context: Context, definition: object) -> dict[str, Any]:
    """Save a definition (refused with the field at fault) and materialise it for every
    profile at once, so a segment may use it straight away.

    Raises:
        InvalidField: the definition is malformed; nothing is saved."""
    trait = catalogue.save_definition(context.store, definition)
    context.pipeline.refresh_computed_traits()
    return trait.to_dict()


def delete(context: Context, name: str) -> dict[str, str]:
    catalogue.delete_definition(context.store, name)
    return {"deleted": name}
