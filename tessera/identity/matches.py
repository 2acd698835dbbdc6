"""The probabilistic matches as stored (`identity_matches`): what the identity graph links,
what waits for review, and what people decided.

A match names each side by one identifier (profile ids change as profiles merge; an
identifier stays where it is). Its status: `linked` (found above the upper threshold),
`review` (between the two thresholds: a person decides), `accepted` or `rejected` (they
did). `linked` and `accepted` matches are links in force: the graph merges their two
profiles when both identifiers are known (`graph.py`, step 4). Not derived: a rebuild
keeps every row, and replays the links in force at the same place in the log.
"""

from __future__ import annotations

from typing import Any

import orjson

from tessera.identity.identifiers import Identifier
from tessera.store import Store

IN_FORCE = ("linked", "accepted")
#: the ledger's rule text for a probabilistic merge starts with this
RULE_PREFIX = "probabilistic match"


def ledger_rule(match_id: str, probability: float) -> str:
    """The rule a probabilistic merge is recorded under in the ledger (explain reads the
    match id back from it to show the evidence)."""
    return f"{RULE_PREFIX} {match_id} (p={probability:.4f})"


def match_id_of_rule(rule: str | None) -> str | None:
    if not rule or not rule.startswith(RULE_PREFIX):
        return None
    words = rule.split()
    return words[2] if len(words) > 2 else None


def _identifier(text: str) -> Identifier:
    kind, _, value = text.partition(":")
    return Identifier(kind, value)


def links_in_force(store: Store) -> list[tuple[Identifier, Identifier, str]]:
    """The pairs the identity graph links, each with its ledger rule text, oldest first."""
    rows = store.fetch_all(
        "SELECT match_id, first, second, probability FROM identity_matches "
        "WHERE status IN (SELECT unnest($s)) ORDER BY found_at, match_id",
        {"s": list(IN_FORCE)},
    )
    return [
        (_identifier(first), _identifier(second), ledger_rule(match_id, probability))
        for match_id, first, second, probability in rows
    ]


def load(store: Store, match_id: str) -> dict[str, Any] | None:
    rows = store.fetch_dicts("SELECT * FROM identity_matches WHERE match_id = ?", [match_id])
    if not rows:
        return None
    row = rows[0]
    row["evidence"] = orjson.loads(row["evidence"])
    return row


def known_pairs(store: Store) -> list[tuple[str, str]]:
    """Every pair already found (whatever its status): a run does not offer them again."""
    return [(a, b) for a, b in store.fetch_all("SELECT first, second FROM identity_matches")]
