"""Reading events into the computed-trait aggregates and keeping them in the store.

`profiles/aggregates.py` is the pure state; this module is its IO: the events a batch (or
the whole history) holds for each trait, read by one SQL query that extracts values as the
full recompute does (`computed.trait_filter`, `computed.trait_value`: the same
json_extract_string text, the same TRY_CAST), then folded in Python; the state written
with each batch (`trait_aggregates`, migration 12) and restored at start, so a restart
does not read the log again. A definition the stored state does not cover yet (a trait
added or changed) is filled from the log once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import sqlglot
from sqlglot import exp

from tessera.catalog.joins import DEFAULT_KEYS
from tessera.catalog.keys import ProductKeys
from tessera.identity.graph import IdentityGraph
from tessera.profiles.aggregates import Aggregates, day_number, trait_key
from tessera.profiles.computed import (
    ComputedTrait,
    binder,
    events_of_profiles,
    trait_filter,
    trait_value,
)
from tessera.store import Store


def extraction(
    traits: list[ComputedTrait],
    source: exp.Expr,
    *,
    with_profile: bool,
    products: ProductKeys = DEFAULT_KEYS,
) -> tuple[exp.Select, dict[str, Any]]:
    """`seq, time (µs), matched_0, value_0, matched_1, ...` for the events of `source`
    (aliased `ev`) that match at least one trait; `profile_id` first `with_profile`."""
    parameters: dict[str, Any] = {}
    bind = binder(parameters)
    columns: list[exp.Expr] = []
    if with_profile:
        columns.append(exp.column("profile_id", "ev"))
    columns += [
        exp.column("seq", "ev"),
        exp.func("epoch_us", exp.column("timestamp", "ev")),
    ]
    filters = []
    for index, trait in enumerate(traits):
        matched = trait_filter(trait, bind, products=products)
        filters.append(matched.copy())
        columns.append(exp.func("coalesce", matched, exp.false()).as_(f"m{index}"))
        columns.append(trait_value(trait, bind, products=products).as_(f"v{index}"))
    query = sqlglot.select(*columns).from_(source).where(exp.or_(*filters))
    return query, parameters


def read_range(
    store: Store,
    traits: list[ComputedTrait],
    after: int,
    last: int,
    products: ProductKeys = DEFAULT_KEYS,
) -> list[tuple[Any, ...]]:
    """The batch's events (seq in (after, last]) that some trait reads."""
    if not traits:
        return []
    sql, parameters = _range_query(traits, products)
    return store.fetch_all(sql, {**parameters, "after": after, "last": last})


#: the batch query per set of definitions: building it with sqlglot took ~30 ms a batch
_RANGE_QUERIES: dict[tuple[object, ...], tuple[str, dict[str, Any]]] = {}


def _range_query(traits: list[ComputedTrait], products: ProductKeys) -> tuple[str, dict[str, Any]]:
    key = (products, *(trait_key(t) for t in traits))
    found = _RANGE_QUERIES.get(key)
    if found is None:
        events = exp.alias_(
            sqlglot.select("*").from_("events").where("seq > $after AND seq <= $last").subquery(),
            "ev",
            table=True,
        )
        query, parameters = extraction(traits, events, with_profile=False, products=products)
        found = (query.sql(dialect="duckdb"), parameters)
        if len(_RANGE_QUERIES) > 16:  # definitions changed many times: start afresh
            _RANGE_QUERIES.clear()
        _RANGE_QUERIES[key] = found
    return found


def fold(
    aggregates: Aggregates,
    rows: Iterable[tuple[Any, ...]],
    profile_of: Callable[[tuple[Any, ...]], str | None],
    indices: list[int],
    offset: int,
) -> dict[str, set[int]]:
    """Add extracted rows (from `offset`: seq, time, matched_i, value_i...) to the
    aggregates of trait `indices[i]`, for the profile `profile_of(row)` gives; returns
    which traits each profile got events for."""
    added: dict[str, set[int]] = {}
    columns = [(index, offset + 2 + 2 * position) for position, index in enumerate(indices)]
    for row in rows:
        profile = profile_of(row)
        if profile is None:
            continue
        seq, at = row[offset], row[offset + 1]
        mine = added.get(profile)
        if mine is None:
            mine = added[profile] = set()
        for index, column in columns:
            if row[column]:
                aggregates.add(profile, index, at, seq, row[column + 1])
                mine.add(index)
    return added


@dataclass
class BatchTraits:
    """What a batch changed in computed traits, for `write` (in the batch's transaction)
    and for the pipeline's memory once it commits."""

    #: per updated live profile: the traits valued again (the ones the batch gave events
    #: to; every one after a merge) and their values (a trait left without one is absent)
    valued: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: profiles merged away in the batch: their computed traits go
    removed: set[str] = field(default_factory=set)
    moment: datetime | None = None
    #: when the batch also persists the aggregates (`flush_states`): the state of every
    #: profile changed since the last time (None: it has none, its row goes), and the
    #: seq those states now cover
    states: dict[str, str | None] | None = None
    covered_seq: int = 0

    def flush_states(self, aggregates: Aggregates, changed: set[str], last_seq: int) -> None:
        """Persist the aggregates of `changed` (and through `last_seq`) with this batch."""
        self.states = _states(aggregates, changed)
        self.covered_seq = last_seq


def _states(aggregates: Aggregates, profiles: Iterable[str]) -> dict[str, str | None]:
    return {profile: aggregates.state_json(profile) for profile in sorted(profiles)}


def update(
    store: Store,
    aggregates: Aggregates,
    graph: IdentityGraph,
    after: int,
    last: int,
    attributed: list[tuple[int, str]],
    now: datetime,
    products: ProductKeys = DEFAULT_KEYS,
) -> BatchTraits:
    """Apply one batch to the aggregates: its merges (states combine), then its events
    (each to the live profile it now belongs to); returns the touched profiles' values."""
    today = day_number(now)
    aggregates.today = today
    removed: set[str] = set()
    for entry in graph.ledger:
        if entry.kind == "merge" and entry.other_profile is not None:
            aggregates.merge(entry.profile, entry.other_profile)
            removed.add(entry.other_profile)
    owner = dict(attributed)
    rows = read_range(store, aggregates.traits, after, last, products)

    def profile_of(row: tuple[Any, ...]) -> str | None:
        found = owner.get(row[0])
        return None if found is None else graph.resolve(found)

    everything = list(range(len(aggregates.traits)))
    added = fold(aggregates, rows, profile_of, everything, 0)
    names = [t.name for t in aggregates.traits]
    # A merge combines every trait's state: the surviving profile is valued whole. Any
    # other profile only for the traits its events matched: a page view does not change
    # an order count, and valuing every trait of everyone an event touched multiplied the
    # batch's work.
    for entry in graph.ledger:
        if entry.kind == "merge" and entry.other_profile is not None:
            added[graph.resolve(entry.profile)] = set(everything)
    aggregates.prune(today, added)
    changes = BatchTraits(removed=removed, moment=now)
    for profile, indices in added.items():
        if profile in removed:
            continue
        chosen = sorted(indices)
        changes.valued[profile] = [names[i] for i in chosen]
        changes.values[profile] = aggregates.values(profile, today, chosen)
    return changes


def write(store: Store, changes: BatchTraits) -> None:
    """Persist a batch's aggregates and computed traits (call inside its transaction)."""
    profiles = sorted(changes.valued)
    if changes.states is not None:
        _write_states(store, changes.states, changes.covered_seq)
    if changes.removed:
        store.execute(
            "DELETE FROM computed_traits WHERE profile_id IN (SELECT unnest(?))",
            [sorted(changes.removed)],
        )
    pairs = [(profile, name) for profile in profiles for name in changes.valued[profile]]
    if pairs:
        store.execute(
            "DELETE FROM computed_traits AS c USING "
            "(SELECT unnest(?) AS profile_id, unnest(?) AS name) AS v "
            "WHERE c.profile_id = v.profile_id AND c.name = v.name",
            [[p for p, _ in pairs], [n for _, n in pairs]],
        )
    rows = [
        (profile, name, as_json(value))
        for profile in profiles
        for name, value in changes.values[profile].items()
    ]
    if rows:
        insert_values(store, rows, changes.moment)


def save(store: Store, aggregates: Aggregates, changed: set[str], covered_seq: int) -> None:
    """Persist the aggregates of `changed`, covering the log through `covered_seq`, on
    their own (the pipeline's stop; batches persist theirs with `flush_states`)."""
    with store.transaction() as batch:
        _write_states(batch, _states(aggregates, changed), covered_seq)


def _write_states(store: Store, states: dict[str, str | None], covered_seq: int) -> None:
    """Replace these profiles' persisted aggregates, and record the seq they now cover."""
    if states:
        store.execute(
            "DELETE FROM trait_aggregates WHERE profile_id IN (SELECT unnest(?))", [list(states)]
        )
        _insert_states(store, states)
    _record_covered(store, covered_seq)


def _insert_states(store: Store, states: dict[str, str | None]) -> None:
    kept = [(p, s) for p, s in states.items() if s is not None]
    if kept:
        store.insert_arrow(
            "trait_aggregates",
            pa.table({"profile_id": [p for p, _ in kept], "state": [s for _, s in kept]}),
        )


def _record_covered(store: Store, covered_seq: int) -> None:
    store.execute(
        "INSERT OR REPLACE INTO pipeline_state VALUES ('aggregates_seq', ?)", [covered_seq]
    )


def as_json(value: Any) -> str | None:
    """A value as `computed_traits` holds it: JSON text, NULL for none (as `to_json`)."""
    return None if value is None else orjson.dumps(value).decode()


def insert_values(store: Store, rows: list[tuple[Any, ...]], moment: datetime | None) -> None:
    """Rows of (profile_id, name, JSON value) into `computed_traits`."""
    stamp = (moment or datetime.now()).replace(tzinfo=None)
    store.insert_arrow(
        "computed_traits",
        pa.table(
            {
                "profile_id": [r[0] for r in rows],
                "name": [r[1] for r in rows],
                "value": [r[2] for r in rows],
                "computed_at": pa.array([stamp] * len(rows), pa.timestamp("us")),
            }
        ),
    )


def restore(
    store: Store,
    traits: list[ComputedTrait],
    today: int | None = None,
    products: ProductKeys = DEFAULT_KEYS,
) -> Aggregates:
    """The aggregates as persisted for these definitions; a definition the store does not
    cover yet is filled from the log (up to the pipeline's position) and persisted.
    `today` (a UTC day number) lets buckets too old for every window go."""
    aggregates = Aggregates(list(traits), today=today)
    for profile, state in store.fetch_all("SELECT profile_id, state FROM trait_aggregates"):
        aggregates.load_json(profile, state)
    covered = {row[0] for row in store.fetch_all("SELECT key FROM trait_aggregate_keys")}
    missing = [i for i, key in enumerate(aggregates.keys) if key not in covered]
    behind = catch_up(
        store, aggregates, [i for i in range(len(aggregates.keys)) if i not in missing], products
    )
    if missing or covered - set(aggregates.keys) or behind:
        fill(store, aggregates, missing, products)
    return aggregates


def _positions(store: Store) -> tuple[int, int | None]:
    """The pipeline's position, and the one the persisted aggregates cover (None: a store
    from before they were persisted lazily, when they always covered the position)."""
    rows = dict(
        store.fetch_all(
            "SELECT key, value FROM pipeline_state WHERE key IN ('processed_seq', 'aggregates_seq')"
        )
    )
    return int(rows.get("processed_seq", 0)), rows.get("aggregates_seq")


def catch_up(
    store: Store, aggregates: Aggregates, indices: list[int], products: ProductKeys = DEFAULT_KEYS
) -> bool:
    """Bring the persisted aggregates of traits `indices` from the seq they cover to the
    pipeline's position (they are written every few seconds, not with each batch: after a
    crash they may be behind). States of profiles merged since are combined into the
    profile they joined, then the events in between are added to their live profiles.
    Returns whether anything was behind (the caller persists the whole state then)."""
    processed, covered = _positions(store)
    if covered is None or covered >= processed:
        return False
    merged = dict(
        store.fetch_all(
            "SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL"
        )
    )

    def live(profile: str) -> str:
        seen = 0
        while profile in merged and seen < 1000:  # a chain of merges; never a loop
            profile, seen = merged[profile], seen + 1
        return profile

    for profile in [p for p in aggregates.profiles if p in merged]:
        aggregates.merge(live(profile), profile)
    if indices:
        chosen = [aggregates.traits[i] for i in indices]
        since = exp.alias_(
            events_of_profiles().where("e.seq > $covered AND e.seq <= $until").subquery(),
            "ev",
            table=True,
        )
        query, parameters = extraction(chosen, since, with_profile=True, products=products)
        rows = store.fetch_all(
            query.sql(dialect="duckdb"), {**parameters, "covered": covered, "until": processed}
        )
        fold(aggregates, rows, lambda row: live(row[0]), indices, 1)
    return True


def fill(
    store: Store,
    aggregates: Aggregates,
    indices: list[int],
    products: ProductKeys = DEFAULT_KEYS,
) -> None:
    """Build these traits' aggregates from the whole log the pipeline has processed
    (events through their live profile), then persist the whole state and what it
    covers, in one transaction."""
    for index in indices:  # a changed definition starts afresh
        key = aggregates.keys[index]
        for state in aggregates.profiles.values():
            state.pop(key, None)
    until, _ = _positions(store)
    if indices:
        chosen = [aggregates.traits[i] for i in indices]
        history = exp.alias_(
            events_of_profiles().where("e.seq <= $until").subquery(), "ev", table=True
        )
        query, parameters = extraction(chosen, history, with_profile=True, products=products)
        rows = store.fetch_all(query.sql(dialect="duckdb"), {**parameters, "until": until})
        fold(aggregates, rows, lambda row: row[0], indices, 1)
    if aggregates.today is not None:
        aggregates.prune(aggregates.today)
    with store.transaction() as batch:
        batch.execute("DELETE FROM trait_aggregates")
        _insert_states(batch, _states(aggregates, aggregates.profiles))
        _record_covered(batch, until)  # the whole state covers the position now
        batch.execute("DELETE FROM trait_aggregate_keys")
        batch.insert_arrow(
            "trait_aggregate_keys",
            pa.table({"key": aggregates.keys, "name": [t.name for t in aggregates.traits]}),
        )


def covers(aggregates: Aggregates, traits: list[ComputedTrait]) -> bool:
    """Whether the aggregates are for exactly these definitions."""
    return aggregates.keys == [trait_key(t) for t in traits]
