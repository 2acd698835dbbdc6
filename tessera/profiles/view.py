"""The 360° view of one person, and searching for people. Read-only use cases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tessera.errors import InvalidField, NotFound
from tessera.events.timestamps import iso_utc, micros_iso
from tessera.identity.explain import dropped_identifiers, merges
from tessera.identity.identifiers import Identifier
from tessera.identity.lookup import LIVE_PROFILE, member_ids
from tessera.paging import Page, check_limit, decode_cursor, page_of
from tessera.profiles.summary import Summary
from tessera.store import Store

if TYPE_CHECKING:
    from tessera.profiles.unifier import Unifier


def profile_view(
    store: Store,
    profile_id: str,
    *,
    limit: int = 20,
    before_seq: int | None = None,
    core: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything known about one person: identifiers, traits (with where each came
    from), computed traits, merges, consent, channels, and a page of their events
    (`limit` 0 leaves the events out: the one part that needs the event log).

    `core` is the same profile already read from memory (`profile_from_memory`); without
    it, it is read from the store.
    """
    view = dict(core) if core is not None else profile_from_store(store, profile_id)
    if limit > 0:
        view["events"] = timeline(
            store, member_ids(store, profile_id), limit=limit, before_seq=before_seq
        )
    return view


def profile_from_store(store: Store, profile_id: str) -> dict[str, Any]:
    members = member_ids(store, profile_id)
    summary = store.fetch_one(
        "SELECT epoch_us(first_seen), epoch_us(last_seen), event_count, channels, "
        "trait_state FROM profile_summaries WHERE profile_id = ?",
        [profile_id],
    )
    if summary is None:
        raise NotFound(f"no profile {profile_id!r}")
    flagged = store.fetch_one("SELECT flagged FROM profiles WHERE profile_id = ?", [profile_id])
    rows = store.fetch_all(
        "SELECT type, value, first_seq FROM identities WHERE profile_id IN (SELECT unnest(?))",
        [members],
    )
    identifiers = [Identifier(kind, value) for kind, value, _ in rows]
    first_seq = {Identifier(kind, value): seq for kind, value, seq in rows}
    computed = {
        name: orjson.loads(value) if value is not None else None
        for name, value in store.fetch_all(
            "SELECT name, value FROM computed_traits WHERE profile_id = ? ORDER BY name",
            [profile_id],
        )
    }
    return _core(
        profile_id,
        [m for m in members if m != profile_id],
        flagged[0] if flagged else None,
        Summary.from_row(summary[0], summary[1], summary[2], summary[3], summary[4]),
        identifiers,
        first_seq,
        computed,
        merges(store, members),
    )


def profile_from_memory(
    unifier: Unifier, computed: dict[str, dict[str, Any]], profile_id: str
) -> dict[str, Any] | None:
    """The same view from the pipeline's in-memory state: no SQL, microseconds.

    The pipeline thread mutates this state; each structure is copied with one C-level
    call (atomic under the GIL) before it is read.
    """
    graph = unifier.graph
    profile_id = graph.resolve(profile_id)
    members = list(graph.members.get(profile_id, ()))
    summary = unifier.summaries.get(profile_id)
    if summary is None and not members:
        return None
    snapshot = Summary()
    if summary is not None:
        snapshot.absorb(summary)
    absorbed = list(graph.absorbed.get(profile_id, ()))
    entries = [
        {
            "seq": e.seq,
            "kind": e.kind,
            "profile_id": e.profile,
            "other_profile_id": e.other_profile,
            "identifier": str(e.identifier) if e.identifier else None,
            "other_identifier": str(e.other) if e.other else None,
            "rule": e.rule,
        }
        for e in list(unifier.notable.get(profile_id, ()))
    ]
    return _core(
        profile_id,
        sorted(absorbed),
        graph.flagged.get(profile_id),
        snapshot,
        members,
        graph.first_seq,
        computed.get(profile_id, {}),
        entries,
    )


def facts_from_memory(
    unifier: Unifier, computed: dict[str, dict[str, Any]], profile_id: str
) -> dict[str, Any] | None:
    """What a decision needs of a person, from the pipeline's memory: the live profile id,
    the ids merged into it, traits, consent and computed traits. A fraction of
    `profile_from_memory`'s cost (no identifiers, trait sources, times or merge history),
    for the decision API's hot path. Each structure is copied with one C-level call."""
    graph = unifier.graph
    profile_id = graph.resolve(profile_id)
    summary = unifier.summaries.get(profile_id)
    if summary is None and profile_id not in graph.members:
        return None
    traits = list(summary.traits.items()) if summary else []
    consent = list(summary.consent.items()) if summary else []
    return {
        "profile_id": profile_id,
        "merged_ids": list(graph.absorbed.get(profile_id, ())),
        "traits": {key: item.value for key, item in traits},
        "consent": {key: item.value for key, item in consent},
        "computed_traits": dict(computed.get(profile_id, {})),
    }


def _core(
    profile_id: str,
    merged_ids: list[str],
    flagged: str | None,
    summary: Summary,
    identifiers: list[Identifier],
    first_seq: dict[Identifier, int],
    computed: dict[str, Any],
    merge_entries: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "profile_id": profile_id,
        "merged_ids": merged_ids,
        "flagged": flagged,
        "first_seen": micros_iso(summary.first_seen),
        "last_seen": micros_iso(summary.last_seen),
        "event_count": summary.event_count,
        "channels": sorted(summary.channels),
        "identifiers": [
            {"type": i.type, "value": i.value, "first_seq": first_seq.get(i)}
            for i in sorted(identifiers, key=lambda i: (i.type, first_seq.get(i, 0)))
        ],
        "traits": summary.trait_values(),
        "trait_sources": {
            key: {
                "source": item.source,
                "at": micros_iso(item.rank[1]),
                "seq": item.rank[2],
                "priority": item.rank[0],
            }
            for key, item in sorted(summary.traits.items())
        },
        "computed_traits": dict(sorted(computed.items())),
        "consent": summary.consent_values(),
        "merges": sorted(
            (e for e in merge_entries if e["kind"] != "dropped"),
            key=lambda e: (e["seq"], e["kind"]),
        ),
        "dropped_identifiers": dropped_identifiers(merge_entries),
    }


def timeline(
    store: Store, members: list[str], *, limit: int = 20, before_seq: int | None = None
) -> dict[str, Any]:
    """A page of the person's events across channels, newest first."""
    # Two steps: the page's seqs from event_profiles, then those rows by seq. A single
    # query with a sub-select scanned the whole log (7 ms against 2-4 ms on the demo).
    seqs = [
        r[0]
        for r in store.fetch_all(
            "SELECT seq FROM event_profiles WHERE profile_id IN (SELECT unnest($m)) "
            "AND seq < $before ORDER BY seq DESC LIMIT $limit",
            {"m": members, "before": before_seq or 2**62, "limit": limit + 1},
        )
    ]
    rows = (
        store.fetch_dicts(
            "SELECT e.seq, e.timestamp, e.channel, s.name AS source, e.type, e.event, e.name, "
            "e.properties, e.traits, e.message_id FROM events e "
            "JOIN sources s ON s.id = e.source_id "
            "WHERE e.seq IN (SELECT unnest($seqs)) ORDER BY e.seq DESC",
            {"seqs": seqs},
        )
        if seqs
        else []
    )
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["timestamp"] = iso_utc(row["timestamp"])
        for column in ("properties", "traits"):
            row[column] = orjson.loads(row[column]) if row[column] else None
    return {"items": rows, "next_before_seq": rows[-1]["seq"] if more and rows else None}


SEARCH_PAGE_MAX = 200


def search(
    store: Store,
    *,
    identifier: str | None = None,
    trait: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """A page of the profiles whose identifier value contains `identifier` (ignoring
    case; `%` and `_` are plain characters), or with `trait` = `KEY=VALUE`, by profile
    id, with the total; each profile as a `card`.

    Raises InvalidField for a missing or malformed query or a limit outside 1 to
    SEARCH_PAGE_MAX, InvalidCursor for a cursor this search did not hand out.
    """
    check_limit(limit, SEARCH_PAGE_MAX)
    after = decode_cursor("profiles", cursor, str)
    if trait is not None:
        key, separator, wanted = trait.partition("=")
        if not separator or not key.strip():
            raise InvalidField(
                f"trait search {trait!r} must be KEY=VALUE, e.g. city=Paris",
                field="trait",
                value=trait,
            )
        matches = (
            "SELECT profile_id FROM profile_summaries "
            "WHERE lower(json_extract_string(traits, $path)) = lower($wanted)"
        )
        parameters: dict[str, Any] = {
            "path": trait_pointer(key.strip()),
            "wanted": wanted.strip(),
        }
    elif identifier and identifier.strip():
        matches = (
            f"SELECT DISTINCT {LIVE_PROFILE} AS profile_id FROM identities i "
            "LEFT JOIN profiles p ON p.profile_id = i.profile_id "
            "WHERE contains(lower(i.value), lower($fragment))"
        )
        parameters = {"fragment": identifier.strip()}
    else:
        raise InvalidField(
            "search needs an identifier fragment or a trait KEY=VALUE", field="query"
        )
    condition = "" if after is None else "WHERE profile_id > $after"
    rows = store.fetch_dicts(
        f"SELECT profile_id FROM ({matches}) {condition} ORDER BY profile_id LIMIT $fetch",
        parameters | {"fetch": limit + 1} | ({} if after is None else {"after": after}),
    )
    total = store.fetch_one(f"SELECT count(*) FROM ({matches})", parameters)
    found = page_of(
        rows, limit=limit, total=total[0] if total else 0, kind="profiles", key="profile_id"
    )
    return found.model_copy(
        update={"items": cards(store, [row["profile_id"] for row in found.items])}
    )


def trait_pointer(key: str) -> str:
    """A JSON Pointer (RFC 6901) to the top-level trait `key`, bound as a parameter: unlike a
    `$."..."` path it needs no quoting, so any key (quotes, backslashes, dots) is found and
    none can break the path. `~` and `/` are escaped as the RFC says."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def display_name(traits: dict[str, Any]) -> str | None:
    """A person's name from common trait spellings (firstName or first_name, ...)."""
    first = traits.get("firstName") or traits.get("first_name")
    last = traits.get("lastName") or traits.get("last_name")
    joined = " ".join(str(part) for part in (first, last) if part)
    return joined or traits.get("name")


def totals(store: Store) -> dict[str, int]:
    """Profiles (live), merges made, and profiles flagged by the circuit breaker."""
    row = store.fetch_one(
        "SELECT count(*) FILTER (WHERE merged_into IS NULL), "
        "count(*) FILTER (WHERE merged_into IS NOT NULL), "
        "count(*) FILTER (WHERE flagged IS NOT NULL) FROM profiles"
    )
    assert row is not None
    return {"profiles": row[0], "merged": row[1], "flagged": row[2]}


def card(store: Store, profile_id: str) -> dict[str, Any]:
    """A one-line description of a profile for search results."""
    return cards(store, [profile_id])[0]


def cards(store: Store, profile_ids: list[str]) -> list[dict[str, Any]]:
    """One-line descriptions of many profiles in one query, in the order given (a search
    page of 50 cost 50 queries, ~450 ms, before)."""
    if not profile_ids:
        return []
    rows = store.fetch_all(
        "WITH wanted AS (SELECT unnest(?) AS profile_id), ids AS ("
        f"SELECT {LIVE_PROFILE} AS profile_id, "
        "list(i.type || ':' || i.value ORDER BY i.type) AS ids "
        "FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id "
        f"WHERE {LIVE_PROFILE} IN (SELECT profile_id FROM wanted) GROUP BY 1) "
        "SELECT s.profile_id, s.traits, s.last_seen, s.event_count, s.channels, ids.ids "
        "FROM profile_summaries s LEFT JOIN ids ON ids.profile_id = s.profile_id "
        "WHERE s.profile_id IN (SELECT profile_id FROM wanted)",
        [profile_ids],
    )
    found = {row[0]: row for row in rows}
    described: list[dict[str, Any]] = []
    for profile_id in profile_ids:
        row = found.get(profile_id)
        if row is None:
            described.append({"profile_id": profile_id})
            continue
        traits = orjson.loads(row[1])
        described.append(
            {
                "profile_id": profile_id,
                "name": display_name(traits),
                "email": traits.get("email"),
                "last_seen": iso_utc(row[2]),
                "event_count": row[3],
                "channels": orjson.loads(row[4]),
                "identifiers": row[5] or [],
            }
        )
    return described
