"""Unmerging: separating two identifiers that should never have been joined.

The separation is a decision a person takes, so it is kept (`identity_blocks`, which a
rebuild never clears) and the identity graph honours it from then on. Identity does not
rebuild the derived state itself: the context hands in what rebuilds it (the pipeline),
through `identity.context.Rebuilder`, so this package never imports the layers above it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tessera.errors import Conflict, InvalidField
from tessera.events.timestamps import utc_now
from tessera.identity.context import IdentityContext
from tessera.identity.identifiers import Identifier
from tessera.identity.lookup import find_profile, identifier_from_text
from tessera.results import Result
from tessera.store import Store


class Unmerged(Result):
    """Where each identifier lives after an unmerge, and what the rebuild did (the
    pipeline's report: events, batches, seconds, ...)."""

    first: str
    second: str
    first_profile: str
    second_profile: str
    rebuild: dict[str, Any]


class Block(Result):
    """An unmerge in force: the two identifiers, when, and the reason."""

    first: str
    second: str
    created_at: datetime
    reason: str | None


def block(store: Store, first: Identifier, second: Identifier, reason: str | None) -> None:
    """Record that two identifiers are not the same person. The caller rebuilds.

    Raises:
        InvalidField: the two identifiers are the same.
        NotFound: no profile holds one of them.
        Conflict: they are already in different profiles.
    """
    if first == second:
        raise InvalidField("unmerge needs two different identifiers", field="identifiers")
    if find_profile(store, first) != find_profile(store, second):
        raise Conflict(f"{first} and {second} are already in different profiles")
    store.execute(
        "INSERT INTO identity_blocks VALUES (?, ?, ?, ?)",
        [str(first), str(second), utc_now(), reason],
    )


def blocks(store: Store) -> list[Block]:
    """The unmerges in force, oldest first: both identifiers, when, and the reason."""
    rows = store.fetch_dicts(
        "SELECT first, second, created_at, reason FROM identity_blocks ORDER BY created_at"
    )
    return [Block(**row) for row in rows]


def unmerge(context: IdentityContext, first: str, second: str, reason: str | None) -> Unmerged:
    """Separate two identifiers for good: record the pair, rebuild identity and profiles
    from the log (events and traits move back to where they belong), and say where each
    identifier now lives. The one use case behind the API, the console and the CLI.

    Args:
        context: the store, the settings (default phone region) and the pipeline, which
            rebuilds the derived state from the log.
        first, second: `TYPE:VALUE` as typed, normalised like incoming values.
        reason: why, kept with the separation (None: not given).

    Raises:
        InvalidField: an identifier is malformed, or both are the same.
        NotFound: no profile holds one of them.
        Conflict: they are already in different profiles.
    """
    store, region = context.store, context.settings.default_region
    a, b = identifier_from_text(first, region), identifier_from_text(second, region)
    block(store, a, b, reason)
    run = context.pipeline.rebuild()
    return Unmerged(
        first=str(a),
        second=str(b),
        first_profile=find_profile(store, a),
        second_profile=find_profile(store, b),
        rebuild=run.report().model_dump(),
    )
