"""Writing messages straight through the contract and writer of a real store."""

from __future__ import annotations

from typing import Any

from tessera.events.contract import Envelope, check_message
from tessera.events.timestamps import now_micros
from tessera.runtime import Runtime


def send(runtime: Runtime, messages: list[dict[str, Any]], source: str = "web") -> None:
    """Append messages as if posted to /v1/batch by `source` (created on first use)."""
    existing = {s.name: s for s in runtime.sources.list()}
    if source not in existing:
        runtime.sources.create(source, "crm" if source == "crm" else "web")
    target = runtime.sources.get(source)
    envelope = Envelope(target.id, target.channel, now_micros())
    rows = [check_message(m, envelope, default_type=None, max_bytes=1 << 20) for m in messages]
    runtime.writer.write(rows)


def partition(runtime: Runtime) -> set[frozenset[str]]:
    """The identity graph as sets of identifiers, whatever the profile ids are."""
    rows = runtime.store.fetch_all(
        "SELECT coalesce(p.merged_into, i.profile_id), i.type || ':' || i.value "
        "FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id"
    )
    groups: dict[str, set[str]] = {}
    for profile, identifier in rows:
        groups.setdefault(profile, set()).add(identifier)
    return {frozenset(g) for g in groups.values()}


def snapshot(runtime: Runtime) -> dict[str, Any]:
    """Everything derived, in a comparable form."""
    store = runtime.store
    return {
        "identities": sorted(
            store.fetch_all(
                "SELECT i.type, i.value, coalesce(p.merged_into, i.profile_id) FROM identities i "
                "LEFT JOIN profiles p ON p.profile_id = i.profile_id"
            )
        ),
        "events": sorted(
            store.fetch_all(
                "SELECT ep.seq, coalesce(p.merged_into, ep.profile_id) FROM event_profiles ep "
                "LEFT JOIN profiles p ON p.profile_id = ep.profile_id"
            )
        ),
        "summaries": sorted(
            store.fetch_all(
                "SELECT profile_id, first_seen, last_seen, event_count, channels, traits, consent "
                "FROM profile_summaries"
            )
        ),
        "ledger": sorted(
            store.fetch_all(
                "SELECT seq, kind, profile_id, identifier, other_identifier, other_profile_id, "
                "rule FROM identity_ledger"
            )
        ),
        "computed": sorted(store.fetch_all("SELECT profile_id, name, value FROM computed_traits")),
    }
