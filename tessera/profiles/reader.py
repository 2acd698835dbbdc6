"""Showing one profile, the use case every edge offers: the 360° view of `TYPE:VALUE` or
a profile id, now or as of a date, from the pipeline's memory where it can."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tessera.context import Context
from tessera.identity.lookup import identifier_from_text, lookup
from tessera.profiles import view
from tessera.profiles.asof import profile_as_of
from tessera.results import Result


class ProfileView(Result):
    """The 360° view of one person now: identifiers, traits with where each came from,
    computed traits, merges, consent, channels, and a page of events when asked."""

    profile_id: str
    merged_ids: list[str]
    flagged: str | None
    first_seen: str | None
    last_seen: str | None
    event_count: int
    channels: list[str]
    identifiers: list[dict[str, Any]]
    traits: dict[str, Any]
    trait_sources: dict[str, dict[str, Any]]
    computed_traits: dict[str, Any]
    consent: dict[str, Any]
    merges: list[dict[str, Any]]
    dropped_identifiers: list[dict[str, Any]]
    events: dict[str, Any] | None = Field(
        default=None, exclude_if=lambda events: events is None, description="A page of events"
    )


class Timeline(Result):
    """A page of one person's events across channels, newest first; `next_before_seq`
    asks for the page after (None on the last)."""

    items: list[dict[str, Any]]
    next_before_seq: int | None


class ProfileAsOf(Result):
    """One person as they stood at a moment: identifiers, traits, consent, channels."""

    as_of: str
    profile_id: str
    identifiers: list[dict[str, Any]]
    traits: dict[str, Any]
    consent: dict[str, Any]
    event_count: int
    channels: list[str]
    first_seen: str | None
    last_seen: str | None


Profile = ProfileView | ProfileAsOf


def from_memory(context: Context, reference: str) -> ProfileView | None:
    """The profile's core (no events) from the pipeline's memory without SQL, or None
    when the memory cannot answer (not loaded, a profile id). An identifier the loaded
    memory lacks is NotFound at once."""
    if reference.startswith("prf_"):
        return None
    identifier = identifier_from_text(reference, context.settings.default_region)
    found = context.pipeline.find_in_memory(identifier)
    core = context.pipeline.read_profile(found) if found else None
    # Built by the pipeline's own code from its memory, not read from outside: the hot
    # path of look-ups skips validating it again.
    return ProfileView.model_construct(**core) if core is not None else None


def show(
    context: Context,
    reference: str,
    events: int = 20,
    before_seq: int | None = None,
    as_of: str | None = None,
) -> Profile:
    """Everything known about one person with a page of `events` (0: none), or the
    profile as it stood on the date `as_of`.

    Raises:
        NotFound: no profile has this identifier or id.
        InvalidField: the reference or the date cannot be read."""
    store, settings, pipeline = context.store, context.settings, context.pipeline
    if as_of:
        return ProfileAsOf(**profile_as_of(store, settings, reference, as_of))
    profile_id = lookup(store, reference, settings.default_region, pipeline.find_in_memory)
    core = pipeline.read_profile(profile_id)
    found = view.profile_view(store, profile_id, limit=events, before_seq=before_seq, core=core)
    return ProfileView(**found)
