"""Why are two identifiers one person? The chain of ledger links that joins them; and
unmerging: separating two identifiers that should never have been joined."""

from __future__ import annotations

from collections import deque
from typing import Any

from tessera.errors import Conflict, InvalidField
from tessera.events.timestamps import iso_utc, utc_now
from tessera.identity.identifiers import Identifier
from tessera.pipeline import Pipeline
from tessera.profiles.view import (
    dropped_identifiers,
    find_profile,
    identifier_from_text,
    member_ids,
    merges,
)
from tessera.store import Store


def explain(store: Store, first: Identifier, second: Identifier) -> dict[str, Any]:
    """The shortest chain of links (each with the event and rule that made it) from
    `first` to `second`, or why there is none; with the values either profile sent as
    identifiers that could not be one (a malformed e-mail that would have joined them)."""
    profile_a, profile_b = find_profile(store, first), find_profile(store, second)
    answer: dict[str, Any] = {
        "first": str(first),
        "second": str(second),
        "first_profile": profile_a,
        "second_profile": profile_b,
        "same_profile": profile_a == profile_b,
        "chain": [],
        "dropped_identifiers": {
            "first": dropped_identifiers(merges(store, member_ids(store, profile_a))),
            "second": dropped_identifiers(merges(store, member_ids(store, profile_b))),
        },
    }
    if profile_a != profile_b:
        return answer
    members = member_ids(store, profile_a)
    edges = store.fetch_dicts(
        "SELECT l.seq, l.kind, l.identifier, l.other_identifier, l.rule, s.name AS source, "
        "e.type, e.event, e.message_id, e.timestamp FROM identity_ledger l "
        "JOIN events e ON e.seq = l.seq JOIN sources s ON s.id = e.source_id "
        "WHERE l.kind IN ('link', 'merge') AND l.profile_id IN (SELECT unnest(?)) "
        "ORDER BY l.seq",
        [members],
    )
    answer["chain"] = _path(edges, str(first), str(second))
    return answer


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
                "because": f"seen together on {edge['type']} "
                f"{edge['event'] or ''} from {edge['source']}".replace("  ", " "),
                "message_id": edge["message_id"],
                "timestamp": iso_utc(edge["timestamp"]),
            }
        )
        node = previous
    return list(reversed(chain))


def block(store: Store, first: Identifier, second: Identifier, reason: str | None) -> None:
    """Record that two identifiers are not the same person. The caller rebuilds."""
    if first == second:
        raise InvalidField("unmerge needs two different identifiers", field="identifiers")
    if find_profile(store, first) != find_profile(store, second):
        raise Conflict(f"{first} and {second} are already in different profiles")
    store.execute(
        "INSERT INTO identity_blocks VALUES (?, ?, ?, ?)",
        [str(first), str(second), utc_now(), reason],
    )


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


def blocks(store: Store) -> list[dict[str, Any]]:
    return store.fetch_dicts(
        "SELECT first, second, created_at, reason FROM identity_blocks ORDER BY created_at"
    )


def unmerge(
    store: Store,
    pipeline: Pipeline,
    first: str,
    second: str,
    reason: str | None,
    default_region: str | None,
) -> dict[str, Any]:
    """Separate two identifiers for good: record the pair, rebuild identity and profiles
    from the log (events and traits move back to where they belong), and say where each
    identifier now lives. Shared by the API and the CLI."""
    a = identifier_from_text(first, default_region)
    b = identifier_from_text(second, default_region)
    block(store, a, b, reason)
    run = pipeline.rebuild()
    return {
        "first": str(a),
        "second": str(b),
        "first_profile": find_profile(store, a),
        "second_profile": find_profile(store, b),
        "rebuild": run.to_dict(),
    }
