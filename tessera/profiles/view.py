"""The 360° view of one person, and searching for people. Read-only use cases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from tessera.errors import InvalidField, NotFound
from tessera.identity.identifiers import Identifier, parse_identifier
from tessera.store import Store

_LIVE = "coalesce(p.merged_into, i.profile_id)"


def identifier_from_text(text: str, default_region: str | None) -> Identifier:
    """`email:Jane@X.com ` as typed by a person, normalised like an incoming value."""
    try:
        return parse_identifier(text, region=default_region)
    except ValueError as e:
        raise InvalidField(str(e), field="identifier", value=text) from None


def find_profile(store: Store, identifier: Identifier) -> str:
    """The live profile holding an identifier; NotFound names what was looked for."""
    row = store.fetch_one(
        f"SELECT {_LIVE} FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id "
        "WHERE i.type = ? AND i.value = ?",
        [identifier.type, identifier.value],
    )
    if row is None:
        raise NotFound(
            f"no profile has {identifier} (values are compared normalised; "
            "has the pipeline processed the events? see `tessera stats`)"
        )
    return str(row[0])


def resolve_profile_id(store: Store, profile_id: str) -> str:
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


def profile_view(
    store: Store, profile_id: str, *, limit: int = 20, before_seq: int | None = None
) -> dict[str, Any]:
    """Everything known about one person: identifiers, traits (with where each came
    from), computed traits, merges, consent, channels, and a page of their events."""
    members = member_ids(store, profile_id)
    summary = store.fetch_one(
        "SELECT first_seen, last_seen, event_count, channels, traits, trait_state, consent "
        "FROM profile_summaries WHERE profile_id = ?",
        [profile_id],
    )
    if summary is None:
        # A profile started by an identifier a rule kept apart has no events yet.
        resolve_profile_id(store, profile_id)
        summary = (None, None, 0, "[]", "{}", '{"traits": {}, "consent": {}}', "{}")
    first_seen, last_seen, count, channels, traits, state, consent = summary
    flagged = store.fetch_one("SELECT flagged FROM profiles WHERE profile_id = ?", [profile_id])
    identifiers = store.fetch_dicts(
        "SELECT i.type, i.value, i.first_seq, e.received_at AS linked_at FROM identities i "
        "JOIN events e ON e.seq = i.first_seq "
        "WHERE i.profile_id IN (SELECT unnest(?)) ORDER BY i.type, i.first_seq",
        [members],
    )
    computed = {
        name: orjson.loads(value) if value is not None else None
        for name, value in store.fetch_all(
            "SELECT name, value FROM computed_traits WHERE profile_id = ? ORDER BY name",
            [profile_id],
        )
    }
    provenance = {
        key: {"source": item[4], "at": _micros_iso(item[2]), "seq": item[3], "priority": item[1]}
        for key, item in orjson.loads(state)["traits"].items()
    }
    return {
        "profile_id": profile_id,
        "merged_ids": [m for m in members if m != profile_id],
        "flagged": flagged[0] if flagged else None,
        "first_seen": _iso(first_seen),
        "last_seen": _iso(last_seen),
        "event_count": count,
        "channels": orjson.loads(channels),
        "identifiers": [{**i, "linked_at": _iso(i["linked_at"])} for i in identifiers],
        "traits": orjson.loads(traits),
        "trait_sources": provenance,
        "computed_traits": computed,
        "consent": orjson.loads(consent),
        "merges": merges(store, members),
        "events": timeline(store, members, limit=limit, before_seq=before_seq),
    }


def merges(store: Store, members: list[str]) -> list[dict[str, Any]]:
    return store.fetch_dicts(
        "SELECT l.seq, l.kind, l.profile_id, l.other_profile_id, l.identifier, "
        "l.other_identifier, l.rule FROM identity_ledger l "
        "WHERE l.kind IN ('merge', 'conflict', 'breaker') AND "
        "(l.profile_id IN (SELECT unnest($m)) OR l.other_profile_id IN (SELECT unnest($m))) "
        "ORDER BY l.seq",
        {"m": members},
    )


def timeline(
    store: Store, members: list[str], *, limit: int = 20, before_seq: int | None = None
) -> dict[str, Any]:
    """A page of the person's events across channels, newest first."""
    rows = store.fetch_dicts(
        "SELECT e.seq, e.timestamp, e.channel, s.name AS source, e.type, e.event, e.name, "
        "e.properties, e.traits, e.message_id FROM events e JOIN sources s ON s.id = e.source_id "
        "WHERE e.seq IN (SELECT seq FROM event_profiles WHERE profile_id IN (SELECT unnest($m))) "
        "AND e.seq < $before ORDER BY e.seq DESC LIMIT $limit",
        {"m": members, "before": before_seq or 2**62, "limit": limit + 1},
    )
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["timestamp"] = _iso(row["timestamp"])
        for column in ("properties", "traits"):
            row[column] = orjson.loads(row[column]) if row[column] else None
    return {"items": rows, "next_before_seq": rows[-1]["seq"] if more and rows else None}


def search(
    store: Store, *, identifier: str | None = None, trait: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Profiles whose identifier value contains `identifier`, or with `trait` = `KEY=VALUE`."""
    if trait is not None:
        key, separator, wanted = trait.partition("=")
        if not separator or not key.strip():
            raise InvalidField(
                f"trait search {trait!r} must be KEY=VALUE, e.g. city=Paris",
                field="trait",
                value=trait,
            )
        rows = store.fetch_all(
            "SELECT profile_id FROM profile_summaries "
            "WHERE lower(json_extract_string(traits, ?)) = lower(?) "
            "ORDER BY last_seen DESC LIMIT ?",
            ['$."' + key.strip().replace('"', '\\"') + '"', wanted.strip(), limit],
        )
    elif identifier:
        rows = store.fetch_all(
            f"SELECT DISTINCT {_LIVE} FROM identities i "
            "LEFT JOIN profiles p ON p.profile_id = i.profile_id "
            "WHERE i.value ILIKE '%' || ? || '%' LIMIT ?",
            [identifier.strip(), limit],
        )
    else:
        raise InvalidField(
            "search needs an identifier fragment or a trait KEY=VALUE", field="query"
        )
    return [card(store, row[0]) for row in rows]


def card(store: Store, profile_id: str) -> dict[str, Any]:
    """A one-line description of a profile for search results."""
    row = store.fetch_one(
        "SELECT s.traits, s.last_seen, s.event_count, s.channels, "
        "(SELECT list(i.type || ':' || i.value ORDER BY i.type) FROM identities i "
        " LEFT JOIN profiles p ON p.profile_id = i.profile_id "
        f" WHERE {_LIVE} = s.profile_id) FROM profile_summaries s WHERE s.profile_id = ?",
        [profile_id],
    )
    if row is None:
        return {"profile_id": profile_id}
    traits = orjson.loads(row[0])
    name = " ".join(
        str(traits[k])
        for k in ("firstName", "first_name", "lastName", "last_name")
        if traits.get(k)
    ) or traits.get("name")
    return {
        "profile_id": profile_id,
        "name": name,
        "email": traits.get("email"),
        "last_seen": _iso(row[1]),
        "event_count": row[2],
        "channels": orjson.loads(row[3]),
        "identifiers": row[4] or [],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _micros_iso(micros: int) -> str:
    return datetime.utcfromtimestamp(micros / 1_000_000).isoformat() + "Z"


def lookup(store: Store, reference: str, default_region: str | None) -> str:
    """A profile from `TYPE:VALUE` or a profile id (merged ids redirect to the survivor)."""
    if reference.startswith("prf_"):
        return resolve_profile_id(store, reference.strip())
    return find_profile(store, identifier_from_text(reference, default_region))
