"""Finding a person: which live profile holds an identifier or answers to a profile id,
and which profile ids were merged into it. Read-only, from the identity tables."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from tessera.errors import InvalidField, NotFound
from tessera.identity.identifiers import (
    STANDARD_TYPES,
    Identifier,
    parse_identifier,
)
from tessera.identity.rules import DEFAULT_RULES
from tessera.store import Store

# A merged profile's identities still carry its old id; this column redirects them to the
# survivor (`i` is identities, `p` is profiles).
LIVE_PROFILE = "coalesce(p.merged_into, i.profile_id)"


def identifier_from_text(text: str, default_region: str | None) -> Identifier:
    """`email:Jane@X.com ` as typed by a person, normalised like an incoming value.

    Raises:
        InvalidField: the text is not `TYPE:VALUE` or the value cannot be that type.
    """
    try:
        return parse_identifier(text, region=default_region)
    except ValueError as e:
        raise InvalidField(str(e), field="identifier", value=text) from None


def find_profile(store: Store, identifier: Identifier) -> str:
    """The live profile holding an identifier; NotFound names what was looked for."""
    row = store.fetch_one(
        f"SELECT {LIVE_PROFILE} FROM identities i "
        "LEFT JOIN profiles p ON p.profile_id = i.profile_id "
        "WHERE i.type = ? AND i.value = ?",
        [identifier.type, identifier.value],
    )
    if row is None:
        raise not_found(identifier)
    return str(row[0])


def not_found(identifier: Identifier) -> NotFound:
    """What a look-up of an identifier no profile holds answers. Any type parses (custom
    ones such as crm_id), so a misspelt standard type (`mail:` for `email:`) only shows up
    here, as a miss: a type that is not a standard or ruled one but very close to a
    standard one is named as a likely typo (`crm_id`, `work_email`, `service_id` are not)."""
    text = (
        f"no profile has {identifier} (values are compared normalised; "
        "has the pipeline processed the events? see `tessera stats`)"
    )
    if identifier.type not in STANDARD_TYPES and identifier.type not in DEFAULT_RULES:
        closest = difflib.get_close_matches(identifier.type, STANDARD_TYPES, n=1, cutoff=0.85)
        if closest:
            text += f"; {identifier.type!r} is not a standard type: did you mean {closest[0]!r}?"
    return NotFound(text)


def resolve_profile_id(store: Store, profile_id: str) -> str:
    """The live profile a profile id names (a merged id redirects to the survivor)."""
    row = store.fetch_one(
        "SELECT coalesce(merged_into, profile_id) FROM profiles WHERE profile_id = ?", [profile_id]
    )
    if row is None:
        raise NotFound(f"no profile {profile_id!r}")
    return str(row[0])


def member_ids(store: Store, profile_id: str) -> list[str]:
    """The profile and every profile merged into it (their ids redirect to it)."""
    return [
        r[0]
        for r in store.fetch_all(
            "SELECT profile_id FROM profiles WHERE profile_id = ? OR merged_into = ? "
            "ORDER BY created_seq",
            [profile_id, profile_id],
        )
    ]


def lookup(
    store: Store,
    reference: str,
    default_region: str | None,
    memory: Callable[[Identifier], str | None] | None = None,
) -> str:
    """A profile from `TYPE:VALUE` or a profile id (merged ids redirect to the survivor).
    `memory` answers from the pipeline's graph when it is loaded in this process (None:
    not loaded; it raises NotFound itself when the loaded graph lacks the identifier)."""
    if reference.startswith("prf_"):
        return resolve_profile_id(store, reference.strip())
    identifier = identifier_from_text(reference, default_region)
    found = memory(identifier) if memory is not None else None
    return found if found is not None else find_profile(store, identifier)
