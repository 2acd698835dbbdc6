"""The identity graph as the pipeline stores it, read back: `restore` and the ledger.

The pipeline writes the graph's changes (`identities`, `profiles`, `identity_ledger`) batch
by batch; a process that starts, or reloads after a failure, restores the graph from those
tables rather than replaying the log.
"""

from __future__ import annotations

from collections.abc import Iterator

from tessera.identity.graph import IdentityGraph, LedgerEntry
from tessera.identity.identifiers import Identifier
from tessera.identity.rules import MergeRules
from tessera.store import Store


def identifier_from_stored(text: str) -> Identifier:
    """`type:value` as the tables store it (already normalised: nothing is checked)."""
    kind, _, value = text.partition(":")
    return Identifier(kind, value)


def restore(store: Store, rules: MergeRules) -> IdentityGraph:
    """The graph as persisted: every profile, every link in the order it was made."""
    profiles = store.fetch_all("SELECT profile_id, created_seq, merged_into, flagged FROM profiles")
    identities = store.fetch_all(
        "SELECT type, value, profile_id, first_seq FROM identities ORDER BY first_seq"
    )
    return IdentityGraph.from_rows(
        rules,
        profiles,
        ((Identifier(kind, value), profile, seq) for kind, value, profile, seq in identities),
    )


def ledger_entries(store: Store, kinds: tuple[str, ...]) -> Iterator[LedgerEntry]:
    """The ledger's entries of these kinds that belong to a profile, in the order written."""
    rows = store.fetch_all(
        "SELECT seq, kind, profile_id, identifier, other_identifier, other_profile_id, rule "
        "FROM identity_ledger WHERE kind IN (SELECT unnest($kinds)) AND profile_id <> '' "
        "ORDER BY id",
        {"kinds": list(kinds)},
    )
    for seq, kind, profile, identifier, other, other_profile, rule in rows:
        yield LedgerEntry(
            seq,
            kind,
            profile,
            identifier_from_stored(identifier) if identifier else None,
            identifier_from_stored(other) if other else None,
            other_profile,
            rule,
        )


def last_ledger_id(store: Store) -> int:
    """The id of the ledger's last entry (0 when empty): the next is numbered after it."""
    row = store.fetch_one("SELECT coalesce(max(id), 0) FROM identity_ledger")
    return int(row[0]) if row else 0
