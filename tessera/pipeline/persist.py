"""Writing one batch's derived rows: Arrow tables, one transaction with the new position.

The graph's changes (links, ledger entries, profile rows), the touched profiles' summaries
and computed traits (with their aggregates), the event → profile attributions and
`pipeline_state.processed_seq` commit together, so a crash between batches loses nothing
and a batch is never applied twice.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from tessera.identity.graph import LedgerEntry
from tessera.profiles import aggregate_store
from tessera.profiles.unifier import Unifier
from tessera.store import Store


def write_batch(
    store: Store,
    unifier: Unifier,
    last_seq: int,
    attributed: list[tuple[int, str]],
    touched: set[str],
    last_ledger_id: int,
    traits: aggregate_store.BatchTraits | None = None,
) -> int:
    """Persist what the batch changed (draining the graph) and its computed traits, and
    move the pipeline to `last_seq`; returns the id of the ledger's last entry now."""
    graph = unifier.graph
    ledger, links, changed = graph.drain()
    changed_list = sorted(changed)
    summaries = sorted((touched | changed) - graph.redirect.keys())
    with store.transaction() as batch:
        if attributed:
            batch.insert_arrow(
                "event_profiles",
                pa.table(
                    {
                        "seq": pa.array([a[0] for a in attributed], pa.int64()),
                        "profile_id": [a[1] for a in attributed],
                    }
                ),
            )
        if links:
            batch.insert_arrow(
                "identities",
                pa.table(
                    {
                        "type": [i.type for i, _, _ in links],
                        "value": [i.value for i, _, _ in links],
                        "profile_id": [p for _, p, _ in links],
                        "first_seq": pa.array([s for _, _, s in links], pa.int64()),
                    }
                ),
            )
        if ledger:
            batch.insert_arrow("identity_ledger", ledger_table(ledger, last_ledger_id + 1))
        if changed_list:
            batch.execute(
                "DELETE FROM profiles WHERE profile_id IN (SELECT unnest(?))", [changed_list]
            )
            batch.insert_arrow(
                "profiles",
                pa.table(
                    {
                        "profile_id": changed_list,
                        "created_seq": pa.array(
                            [graph.created[p] for p in changed_list], pa.int64()
                        ),
                        "merged_into": [graph.redirect.get(p) for p in changed_list],
                        "flagged": [graph.flagged.get(p) for p in changed_list],
                    }
                ),
            )
        batch.execute(
            "DELETE FROM profile_summaries WHERE profile_id IN (SELECT unnest(?))",
            [sorted(touched | changed)],
        )
        if summaries:
            batch.insert_arrow("profile_summaries", summary_table(unifier, summaries))
        if traits is not None:
            aggregate_store.write(batch, traits)
        batch.execute(
            "INSERT OR REPLACE INTO pipeline_state VALUES ('processed_seq', ?)", [last_seq]
        )
    return last_ledger_id + len(ledger)


def ledger_table(entries: list[LedgerEntry], first_id: int) -> pa.Table:
    """Ledger entries as rows of `identity_ledger`, numbered from `first_id`."""
    return pa.table(
        {
            "id": pa.array(range(first_id, first_id + len(entries)), pa.int64()),
            "seq": pa.array([e.seq for e in entries], pa.int64()),
            "kind": [e.kind for e in entries],
            "profile_id": [e.profile for e in entries],
            "identifier": [str(e.identifier) if e.identifier else None for e in entries],
            "other_identifier": [str(e.other) if e.other else None for e in entries],
            "other_profile_id": [e.other_profile for e in entries],
            "rule": [e.rule for e in entries],
        }
    )


def summary_table(unifier: Unifier, profiles: list[str]) -> pa.Table:
    """These profiles' summaries as rows of `profile_summaries`."""
    # A profile started by an identifier a rule kept apart has no events: an empty
    # summary, so it can still be looked up.
    rows = [unifier.summary(p) for p in profiles]
    micros = pa.timestamp("us")
    return pa.table(
        {
            "profile_id": profiles,
            "first_seen": pa.array([s.first_seen for s in rows], micros),
            "last_seen": pa.array([s.last_seen for s in rows], micros),
            "event_count": pa.array([s.event_count for s in rows], pa.int64()),
            "channels": [orjson.dumps(sorted(s.channels)).decode() for s in rows],
            "traits": [orjson.dumps(s.trait_values()).decode() for s in rows],
            "trait_state": [s.state_json() for s in rows],
            "consent": [orjson.dumps(s.consent_values()).decode() for s in rows],
        }
    )
