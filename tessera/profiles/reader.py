"""Showing one profile, the use case every edge offers: the 360° view of `TYPE:VALUE` or
a profile id, now or as of a date, from the pipeline's memory where it can."""

from __future__ import annotations

from typing import Any

from tessera.context import Context
from tessera.identity.lookup import identifier_from_text, lookup
from tessera.profiles import view
from tessera.profiles.asof import profile_as_of


def from_memory(context: Context, reference: str) -> dict[str, Any] | None:
    """The profile's core (no events) from the pipeline's memory without SQL, or None
    when the memory cannot answer (not loaded, a profile id, an unknown identifier)."""
    if reference.startswith("prf_"):
        return None
    identifier = identifier_from_text(reference, context.settings.default_region)
    found = context.pipeline.find_in_memory(identifier)
    return context.pipeline.read_profile(found) if found else None


def show(
    context: Context,
    reference: str,
    events: int = 20,
    before_seq: int | None = None,
    as_of: str | None = None,
) -> dict[str, Any]:
    """Everything known about one person with a page of `events` (0: none), or the
    profile as it stood on the date `as_of`.

    Raises:
        NotFound: no profile has this identifier or id.
        InvalidField: the reference or the date cannot be read."""
    store, settings, pipeline = context.store, context.settings, context.pipeline
    if as_of:
        return profile_as_of(store, settings, reference, as_of)
    profile_id = lookup(store, reference, settings.default_region, pipeline.find_in_memory)
    core = pipeline.read_profile(profile_id)
    return view.profile_view(store, profile_id, limit=events, before_seq=before_seq, core=core)
