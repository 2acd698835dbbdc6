"""The lifetime of anonymous data (Audience Manager's trait and cookie lifetimes).

A profile is anonymous while every identifier it has is a browser or device id: cookie,
anonymous id, device id, mobile ad id, or a partner's synced id. Such a profile expires when
it has not been seen for the lifetime of its identifier types (TESSERA_ANONYMOUS_LIFETIME_DAYS,
per type in TESSERA_ANONYMOUS_LIFETIMES; the longest of its types counts). Expired profiles
are purged from the event log itself, not only from what is derived from it, so a rebuild
cannot bring them back. A profile that became known (a user id, an e-mail...) keeps its
whole history, anonymous part included.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tessera.results import Result
from tessera.segments.tree import ANONYMOUS_TYPES
from tessera.store import Store

#: Derived tables keyed by profile_id, cleared for purged profiles.
_BY_PROFILE = ("identities", "profile_summaries", "computed_traits", "segment_members",
               "identity_ledger", "event_profiles", "profiles",
               "trait_aggregates", "predicted_traits")  # fmt: skip


class Purged(Result):
    """Anonymous profiles past their lifetime: how many (with their events and third-party
    memberships) were purged, or would be with `dry_run`."""

    profiles: int
    events: int
    third_party: int
    dry_run: bool


def is_anonymous_type(identifier_type: str) -> bool:
    return identifier_type in ANONYMOUS_TYPES or identifier_type.startswith("sync_")


def is_anonymous(identifier_types: list[str]) -> bool:
    return bool(identifier_types) and all(is_anonymous_type(t) for t in identifier_types)


def expired(
    types: list[str], last_seen: datetime, now: datetime, lifetime_days: Callable[[str], int]
) -> bool:
    """Has this profile outlived its anonymous data? Known profiles never expire."""
    if not is_anonymous(types):
        return False
    longest = max(lifetime_days(t) for t in types)
    return last_seen < now - timedelta(days=longest)


def expired_profiles(
    store: Store, now: datetime, lifetime_days: Callable[[str], int], shortest_days: int
) -> list[str]:
    """The database keeps only anonymous profiles unseen for the shortest lifetime of any
    type (an hourly job must not carry every profile into Python); `expired` decides."""
    anonymous = ", ".join(f"'{kind}'" for kind in sorted(ANONYMOUS_TYPES))
    rows = store.fetch_all(
        "WITH types AS (SELECT coalesce(p.merged_into, i.profile_id) AS live, "
        "list(DISTINCT i.type) AS types FROM identities i "
        "LEFT JOIN profiles p ON p.profile_id = i.profile_id GROUP BY live "
        f"HAVING bool_and(i.type IN ({anonymous}) OR starts_with(i.type, 'sync_'))) "
        "SELECT s.profile_id, s.last_seen, t.types FROM profile_summaries s "
        "JOIN types t ON t.live = s.profile_id WHERE s.last_seen < ?",
        [now - timedelta(days=shortest_days)],
    )
    return sorted(
        profile_id
        for profile_id, last_seen, types in rows
        if last_seen is not None and expired(types, last_seen, now, lifetime_days)
    )


def purge(
    store: Store,
    now: datetime,
    lifetime_days: Callable[[str], int],
    shortest_days: int,
    *,
    dry_run: bool = False,
) -> Purged:
    """Delete expired anonymous profiles: their events from the log, every row derived
    from them and their third-party data; and third-party memberships past their own
    lifetime. The caller holds the pipeline still and reloads its memory afterwards."""
    profiles = expired_profiles(store, now, lifetime_days, shortest_days)
    lapsed = store.fetch_one(
        "SELECT count(*) FROM third_party_memberships WHERE expires_at <= ?", [now]
    )
    third_party = lapsed[0] if lapsed else 0
    if not dry_run and third_party:
        store.execute("DELETE FROM third_party_memberships WHERE expires_at <= ?", [now])
    if not profiles:
        return Purged(profiles=0, events=0, third_party=third_party, dry_run=dry_run)
    members = [
        row[0]
        for row in store.fetch_all(
            "SELECT profile_id FROM profiles WHERE profile_id IN (SELECT unnest(?)) "
            "OR merged_into IN (SELECT unnest(?))",
            [profiles, profiles],
        )
    ]
    seqs = [
        row[0]
        for row in store.fetch_all(
            "SELECT seq FROM event_profiles WHERE profile_id IN (SELECT unnest(?))", [members]
        )
    ]
    owned = store.fetch_one(
        "SELECT count(*) FROM third_party_memberships t JOIN identities i "
        "ON i.type = t.identifier_type AND i.value = t.identifier_value "
        "WHERE i.profile_id IN (SELECT unnest(?))",
        [members],
    )
    third_party += owned[0] if owned else 0
    if not dry_run:
        with store.transaction():
            # Third-party data about these browsers goes with them.
            store.execute(
                "DELETE FROM third_party_memberships AS t USING identities AS i "
                "WHERE i.type = t.identifier_type AND i.value = t.identifier_value "
                "AND i.profile_id IN (SELECT unnest(?))",
                [members],
            )
            store.execute("DELETE FROM events WHERE seq IN (SELECT unnest(?))", [seqs])
            for table in _BY_PROFILE:
                store.execute(
                    f"DELETE FROM {table} WHERE profile_id IN (SELECT unnest(?))", [members]
                )
    return Purged(
        profiles=len(profiles),
        events=len(seqs),
        third_party=third_party,
        dry_run=dry_run,
    )
