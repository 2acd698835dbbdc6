"""The whole-population refresh of computed traits, in three steps, so batches need not
wait for it.

1. `Snapshot` (the pipeline's lock held): what the refresh starts from. Each
   batch keeps the traits its events matched up to date (profiles/aggregates.py), valued
   for the day it runs, so once a refresh has valued every profile's aggregates for
   today (the day's sweep), the values in memory are current for the rest of the day:
   a refresh needs only a reference to them (`light`). The first refresh of a day, or
   after the definitions changed, values the aggregates of everyone instead (windows
   slide with the day; ~0.1 s per 10,000 profiles, under the lock), and a rebuild's is
   the full recompute over the log (`full`).
2. `compute` (no lock; the loop runs it on a worker thread while batches go on): what
   only the whole population gives (the traits valued on refresh in one SQL pass, the
   RFM scores, the best channel and time, loyalty; signal and predicted traits beside).
3. `changes` (the lock held again): what differs from memory. The traits the batches
   valued while step 2 ran keep the values those batches gave, the profiles they merged
   away stay gone; only profiles whose traits changed are rewritten, in the store and
   in memory (a refresh used to delete and insert every row, then read them all back).
   The day's sweep and the full recompute still replace every row (`replace`).

A snapshot is dropped unapplied when the memory it was taken from was reloaded meanwhile
(a rebuild, an erasure, a purge, a failed batch), or when another refresh ran since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from tessera.audiences import signals
from tessera.catalog.keys import ProductKeys
from tessera.predict import stored as predicted
from tessera.profiles import catalogue, engagement, engagement_refresh
from tessera.profiles.aggregate_store import insert_values
from tessera.profiles.computed import ComputedTrait
from tessera.store import Store

Values = dict[str, dict[str, Any]]
#: the traits `engagement_refresh.evaluate` values: the evidence and the three answers
_ENGAGED = (*sorted(engagement.EVIDENCE), *engagement.NAMES)


@dataclass
class Snapshot:
    """What one refresh starts from (taken under the pipeline's lock)."""

    now: datetime
    traits: list[ComputedTrait]
    #: the names the batches keep (the rest are the refresh's own)
    kept: frozenset[str]
    #: (UTC day number, the kept definitions): a light refresh needs a sweep with this key
    key: tuple[int, bytes]
    #: each profile's values: the batches' (memory, `light`) or the aggregates' for today;
    #: None for the full recompute
    base: Mapping[str, Mapping[str, Any]] | None
    light: bool
    #: the memory it was taken from, and the count of refreshes begun before it
    origin: object
    epoch: int
    #: filled by the batches that run while it computes: the traits they valued, per
    #: profile, and the profiles they merged away
    touched: dict[str, set[str]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    #: what the last refresh valued of best channel and time, for one that values only
    #: the people whose answer can have changed (None: everyone)
    tracked: engagement_refresh.Tracked | None = None


@dataclass
class Refreshed:
    snapshot: Snapshot
    #: every profile's computed traits, as memory holds them (JSON-shaped values)
    values: Values
    #: what this refresh valued of best channel and time, for the next one
    tracked: engagement_refresh.Tracked | None = None


def key_of(day: int, kept: list[ComputedTrait]) -> tuple[int, bytes]:
    definitions = sorted((t.to_dict() for t in kept), key=lambda d: str(d["name"]))
    return day, orjson.dumps(definitions, option=orjson.OPT_SORT_KEYS)


def compute(store: Store, snapshot: Snapshot, products: ProductKeys) -> Refreshed:
    """Step 2: every profile's computed traits from the snapshot (reads only)."""
    now = snapshot.now
    tracked = None
    if snapshot.base is None:
        values: Values = {}
        for profile, name, value in catalogue.recompute(store, snapshot.traits, now, products):
            values.setdefault(profile, {})[name] = _loads(value)
    else:
        kept = snapshot.kept
        if snapshot.light:  # memory also holds the last refresh's values: leave them out
            base = {p: {n: v for n, v in d.items() if n in kept} for p, d in snapshot.base.items()}
        else:
            base = {p: dict(d) for p, d in snapshot.base.items()}
        # Best channel and time with their evidence: of the people whose answer can have
        # changed since the last refresh; memory's for the others (engagement_refresh.py).
        evaluated = engagement_refresh.evaluate(store, snapshot.tracked if snapshot.light else None)
        engaged = evaluated.values
        if not evaluated.everyone:
            for profile, held in snapshot.base.items():
                if profile not in engaged and engagement.BY_CHANNEL.name in held:
                    engaged[profile] = {n: held[n] for n in _ENGAGED if n in held}
        values = catalogue.completed(store, base, now, products, engaged=engaged)
        tracked = evaluated.tracked
    # Signal traits and predicted traits live beside computed ones
    # (audiences/signals.py, predict/stored.py).
    for profile, name, value in [*signals.evaluate(store, now), *predicted.as_computed(store)]:
        values.setdefault(profile, {})[name] = _loads(value)
    if snapshot.light:
        # Already as memory holds them: the base is memory's own values, the rest was read
        # from JSON or is numbers and text (RFM, loyalty, best channel and time). Writing
        # every profile's values to JSON and back cost ~1.5 s per 100k profiles of GIL.
        return Refreshed(snapshot, {p: d for p, d in values.items() if d}, tracked)
    # As memory holds them: read back from their JSON (tuples become lists, and so on).
    return Refreshed(
        snapshot, {p: orjson.loads(orjson.dumps(d)) for p, d in values.items() if d}, tracked
    )


def changes(
    memory: Mapping[str, Mapping[str, Any]], refreshed: Refreshed
) -> tuple[Values, set[str]]:
    """Step 3: the profiles whose computed traits differ from memory's, with all of their
    new values, and the profiles that have none any more."""
    snapshot, new = refreshed.snapshot, refreshed.values
    for profile in snapshot.removed:
        new.pop(profile, None)
    for profile, names in snapshot.touched.items():
        if profile in snapshot.removed:
            continue
        # The batches valued these after the snapshot (a batch values the traits its
        # events matched): theirs are newer. The others are the snapshot's, valued for
        # its day, which memory may not be yet.
        current = memory.get(profile, {})
        mine = new.get(profile, {})
        merged = {n: v for n, v in mine.items() if n not in names}
        merged.update((n, current[n]) for n in names if n in current)
        if merged:
            new[profile] = merged
        else:
            new.pop(profile, None)
    changed = {p: d for p, d in new.items() if memory.get(p) != d}
    return changed, {p for p in memory if p not in new}


def write(store: Store, changed: Values, gone: set[str], moment: datetime) -> None:
    """The changed profiles' rows replaced, the gone profiles' deleted, in one transaction."""
    with store.transaction():
        store.execute(
            "DELETE FROM computed_traits WHERE profile_id IN (SELECT unnest(?))",
            [sorted(changed.keys() | gone)],
        )
        rows = catalogue.rows_of(changed)
        if rows:
            insert_values(store, rows, moment)


def replace(store: Store, values: Values, moment: datetime) -> None:
    """Every row replaced by `values`, in one transaction (the day's sweep and the full
    recompute: whatever the store held that memory did not know is mended too)."""
    catalogue.refresh(store, catalogue.rows_of(values), moment)


def _loads(value: str | None) -> Any:
    return orjson.loads(value) if value is not None else None
