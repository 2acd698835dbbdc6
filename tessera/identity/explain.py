"""Why are two identifiers one person? The chain of ledger links that joins them, and
what else the merge ledger says about a profile: how each identifier joined it, the
merges it took part in, and the values it sent that could not be identifiers."""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import Field

from tessera.events.timestamps import iso_utc
from tessera.identity import matches
from tessera.identity.context import IdentityContext
from tessera.identity.identifiers import Identifier
from tessera.identity.lookup import find_profile, identifier_from_text, member_ids
from tessera.results import Result
from tessera.store import Store


class Explanation(Result):
    """Why two identifiers are one person (the chain of links, each with the event that
    made it), or why not; with the values either profile sent as identifiers that could
    not be one (`dropped_identifiers`: `first` and `second`)."""

    first: str
    second: str
    first_profile: str
    second_profile: str
    same_profile: bool
    chain: list[dict[str, Any]] = Field(
        description="from, to, kind, seq, because, message_id, timestamp: first to second; "
        "a probabilistic link also has `match` (match_id, probability, match_weight, status "
        "and the waterfall: per field the level, its weight and both values)"
    )
    dropped_identifiers: dict[str, list[dict[str, Any]]]


def why(context: IdentityContext, first: str, second: str) -> Explanation:
    """Why two identifiers, as typed (`TYPE:VALUE`), are one person, or why not: the
    shortest chain of links from `first` to `second` (each with the event and rule that
    made it), or none when they are in different profiles. The one use case behind the
    API, the console and the CLI.

    Raises:
        InvalidField: an identifier is malformed.
        NotFound: no profile holds one of them.
    """
    region = context.settings.default_region
    store = context.store
    first_id, second_id = identifier_from_text(first, region), identifier_from_text(second, region)
    profile_a, profile_b = find_profile(store, first_id), find_profile(store, second_id)
    dropped = {
        "first": dropped_identifiers(merges(store, member_ids(store, profile_a))),
        "second": dropped_identifiers(merges(store, member_ids(store, profile_b))),
    }
    chain = _chain(store, profile_a, first_id, second_id) if profile_a == profile_b else []
    return Explanation(
        first=str(first_id), second=str(second_id), first_profile=profile_a,
        second_profile=profile_b, same_profile=profile_a == profile_b, chain=chain,
        dropped_identifiers=dropped,
    )  # fmt: skip


def _chain(
    store: Store, profile_id: str, first: Identifier, second: Identifier
) -> list[dict[str, Any]]:
    """The fewest ledger links joining two identifiers of one profile."""
    members = member_ids(store, profile_id)
    edges = store.fetch_dicts(
        "SELECT l.seq, l.kind, l.identifier, l.other_identifier, l.rule, s.name AS source, "
        "e.type, e.event, e.message_id, e.timestamp FROM identity_ledger l "
        "JOIN events e ON e.seq = l.seq JOIN sources s ON s.id = e.source_id "
        "WHERE l.kind IN ('link', 'merge') AND l.profile_id IN (SELECT unnest(?)) "
        "ORDER BY l.seq",
        [members],
    )
    chain = _path(edges, str(first), str(second))
    for step in chain:
        match_id = matches.match_id_of_rule(step.get("rule"))
        found = matches.load(store, match_id) if match_id else None
        if found is not None:
            step["because"] = (
                f"probabilistic match {match_id}: probability {found['probability']:.4f}, "
                f"match weight {found['match_weight']:.2f} ({found['status']})"
            )
            step["match"] = {
                "match_id": match_id,
                "probability": found["probability"],
                "match_weight": found["match_weight"],
                "status": found["status"],
                "waterfall": found["evidence"],
            }
        step.pop("rule", None)
    return chain


def _path(edges: list[dict[str, Any]], start: str, goal: str) -> list[dict[str, Any]]:
    """Breadth-first search over the undirected link graph: the fewest links."""
    neighbours: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for edge in edges:
        a, b = edge["identifier"], edge["other_identifier"]
        neighbours.setdefault(a, []).append((b, edge))
        neighbours.setdefault(b, []).append((a, edge))
    came_from: dict[str, tuple[str, dict[str, Any]] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for neighbour, edge in neighbours.get(node, []):
            if neighbour not in came_from:
                came_from[neighbour] = (node, edge)
                queue.append(neighbour)
    if goal not in came_from:
        return []
    chain = []
    node = goal
    while (step := came_from[node]) is not None:
        previous, edge = step
        chain.append(
            {
                "from": previous,
                "to": node,
                "kind": edge["kind"],
                "seq": edge["seq"],
                "rule": edge["rule"],
                "because": f"seen together on {edge['type']} "
                f"{edge['event'] or ''} from {edge['source']}".replace("  ", " "),
                "message_id": edge["message_id"],
                "timestamp": iso_utc(edge["timestamp"]),
            }
        )
        node = previous
    return list(reversed(chain))


def links(store: Store, profile_id: str) -> dict[str, dict[str, Any]]:
    """How each identifier of a profile joined it, from the ledger: the event (seq, source,
    type) and the identifier it arrived with, keyed by `TYPE:VALUE`. Identifiers that
    started their own profile say so (`kind` 'new'; 'merge' when that profile was merged
    in later)."""
    members = member_ids(store, profile_id)
    rows = store.fetch_dicts(
        "SELECT l.identifier, l.kind, l.seq, l.other_identifier, l.rule, s.name AS source, "
        "e.type, e.event FROM identity_ledger l JOIN events e ON e.seq = l.seq "
        "JOIN sources s ON s.id = e.source_id "
        "WHERE l.kind IN ('new', 'link') AND l.profile_id IN (SELECT unnest(?)) ORDER BY l.seq",
        [members],
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        found.setdefault(row.pop("identifier"), row)
    return found


def merges(store: Store, members: list[str]) -> list[dict[str, Any]]:
    """The ledger's merges, conflicts, breaker stops and dropped values that involve any of
    `members` (a profile and the profiles merged into it), oldest first."""
    return store.fetch_dicts(
        "SELECT l.seq, l.kind, l.profile_id, l.other_profile_id, l.identifier, "
        "l.other_identifier, l.rule FROM identity_ledger l "
        "WHERE l.kind IN ('merge', 'conflict', 'breaker', 'dropped') AND "
        "(l.profile_id IN (SELECT unnest($m)) OR l.other_profile_id IN (SELECT unnest($m))) "
        "ORDER BY l.seq",
        {"m": members},
    )


def dropped_identifiers(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The values this person sent as identifiers that could not be one (ledger entries
    of kind `dropped`), oldest first: type, masked value, fingerprint, reason, event."""
    found = []
    for entry in sorted(entries, key=lambda e: e["seq"]):
        if entry["kind"] != "dropped":
            continue
        kind, _, masked = (entry["identifier"] or ":").partition(":")
        found.append(
            {
                "type": kind,
                "value": masked,
                "fingerprint": (entry["other_identifier"] or "").removeprefix("sha256:"),
                "reason": entry["rule"],
                "seq": entry["seq"],
            }
        )
    return found
