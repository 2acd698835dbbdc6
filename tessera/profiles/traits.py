"""The computed-trait use cases every edge offers: list, define (then refresh), delete."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tessera.context import Context
from tessera.profiles import catalogue
from tessera.profiles.computed import ComputedTrait
from tessera.results import Deleted, Result


def _left_out(value: object) -> bool:
    """A part of a definition left out (None, no filter) is not shown."""
    return value is None or value == {}


class Trait(Result):
    """A computed trait's definition, as written (parts left out are not shown)."""

    name: str
    function: str
    event: str | None = Field(default=None, exclude_if=_left_out)
    property: str | None = Field(default=None, exclude_if=_left_out)
    where: dict[str, Any] = Field(default_factory=dict, exclude_if=_left_out)
    window_days: int | None = Field(default=None, exclude_if=_left_out)
    by: str | None = Field(default=None, exclude_if=_left_out)
    category_level: int | None = Field(default=None, exclude_if=_left_out)

    @classmethod
    def of(cls, trait: ComputedTrait) -> Trait:
        return cls(
            name=trait.name, function=trait.function, event=trait.event,
            property=trait.property, where=trait.where, window_days=trait.window_days,
            by=trait.by, category_level=trait.category_level,
        )  # fmt: skip


def listing(context: Context) -> list[Trait]:
    """Every definition: those in the settings' file and those defined here."""
    traits = catalogue.definitions(context.store, context.settings.computed_traits_file)
    return [Trait.of(t) for t in traits]


def define(context: Context, definition: object) -> Trait:
    """Save a definition (refused with the field at fault) and materialise it for every
    profile at once, so a segment may use it straight away.

    Raises:
        InvalidField: the definition is malformed; nothing is saved."""
    trait = catalogue.save_definition(context.store, definition)
    context.pipeline.refresh_computed_traits()
    return Trait.of(trait)


def delete(context: Context, name: str) -> Deleted:
    catalogue.delete_definition(context.store, name)
    return Deleted(deleted=name)
