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
   A light refresh after another (`Prior`) builds the values of the profiles whose
   values can differ from memory's only (`_partial`).
3. `changes` (the lock held again): what differs from memory. The traits the batches
   valued while step 2 ran keep the values those batches gave, the profiles they merged
   away stay gone; only profiles whose traits changed are rewritten, in the store and
   in memory (a refresh used to delete and insert every row, then read them all back).
   The day's sweep and the full recompute still replace every row (`replace`).

A snapshot is dropped unapplied when the memory it was taken from was reloaded meanwhile
(a rebuild, an erasure, a purge, a failed batch), or when another refresh ran since.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from tessera.audiences import signals
from tessera.catalog.keys import ProductKeys
from tessera.predict import stored as predicted
from tessera.profiles import catalogue, engagement, engagement_refresh, loyalty
from tessera.profiles.aggregate_store import insert_values
from tessera.profiles.aggregates import Tiles, rfm_tiles
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
    #: what the last refresh left in memory, for a light one that builds only the
    #: profiles whose values can differ (None: every profile's)
    prior: Prior | None = None


@dataclass(frozen=True)
class Prior:
    """What a refresh left in memory. A light refresh after it builds the values of a
    profile only when one of their sources differs: the batches replaced its dict in
    memory since (they never edit one in place), or they touched it while that refresh
    computed, or its spend per category, best channel and time, RFM scores, signal or
    predicted traits are not what memory holds. For any other profile, building its
    values again would give memory's, and cost ~10 µs of GIL each: ~1 s per 100k
    profiles at every refresh, which requests served beside it waited behind."""

    #: memory's dict of each profile, as the refresh left them (references, not copies)
    values: Mapping[str, Mapping[str, Any]]
    #: the profiles the batches touched while it computed
    due: frozenset[str]
    #: the loyalty rules it used (other rules: every profile's points and tier again)
    rules: object
    #: its signal and predicted traits, per profile
    extra: Mapping[str, Mapping[str, Any]]
    #: its RFM quintiles, and the profiles with a spend per category
    tiles: Tiles
    spent: frozenset[str]


@dataclass
class Refreshed:
    snapshot: Snapshot
    #: every profile's computed traits, as memory holds them (JSON-shaped values)
    values: Values
    #: what this refresh valued of best channel and time, for the next one
    tracked: engagement_refresh.Tracked | None = None
    #: `values` holds only the profiles whose values may differ from memory's (a light
    #: refresh after a `Prior`): a profile it lacks keeps memory's
    partial: bool = False
    #: for the next refresh's `Prior`: the loyalty rules, the signal and predicted traits,
    #: the RFM quintiles and the profiles with a spend per category of this one
    rules: object = None
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tiles: Tiles = field(default_factory=lambda: rfm_tiles({}))
    spent: frozenset[str] = frozenset()


def key_of(day: int, kept: list[ComputedTrait]) -> tuple[int, bytes]:
    definitions = sorted((t.to_dict() for t in kept), key=lambda d: str(d["name"]))
    return day, orjson.dumps(definitions, option=orjson.OPT_SORT_KEYS)


def compute(store: Store, snapshot: Snapshot, products: ProductKeys) -> Refreshed:
    """Step 2: every profile's computed traits from the snapshot (reads only); for a
    light refresh after another with the same loyalty rules, those of the profiles whose
    values can differ from memory's (`_partial`)."""
    now = snapshot.now
    tracked = None
    tiles: Tiles | None = None
    rules = loyalty.rules(store)
    extra: dict[str, dict[str, Any]] = {}
    # Signal traits and predicted traits live beside computed ones
    # (audiences/signals.py, predict/stored.py).
    for profile, name, value in [*signals.evaluate(store, now), *predicted.as_computed(store)]:
        extra.setdefault(profile, {})[name] = _loads(value)
    prior = snapshot.prior
    if snapshot.light and prior is not None and prior.rules == rules:
        return _partial(store, snapshot, products, prior, rules, extra)
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
        tiles = rfm_tiles(base)
        values = catalogue.completed(
            store, base, now, products, rules, engaged=engaged, tiles=tiles
        )
        tracked = evaluated.tracked
    for profile, found in extra.items():
        values.setdefault(profile, {}).update(found)
    if snapshot.light:
        # Already as memory holds them: the base is memory's own values, the rest was read
        # from JSON or is numbers and text (RFM, loyalty, best channel and time). Writing
        # every profile's values to JSON and back cost ~1.5 s per 100k profiles of GIL.
        values = {p: d for p, d in values.items() if d}
    else:  # as memory holds them: read back from their JSON (tuples become lists, ...)
        values = {p: orjson.loads(orjson.dumps(d)) for p, d in values.items() if d}
    return Refreshed(
        snapshot, values, tracked, rules=rules, extra=extra,
        tiles=rfm_tiles(values) if tiles is None else tiles,
        spent=frozenset(p for p, d in values.items() if loyalty.SPEND.name in d),
    )  # fmt: skip


def _partial(
    store: Store,
    snapshot: Snapshot,
    products: ProductKeys,
    prior: Prior,
    rules: loyalty.LoyaltyRules | None,
    extra: dict[str, dict[str, Any]],
) -> Refreshed:
    """A light refresh's values of the profiles whose values can differ from memory's
    (`Prior`); the same values as building everyone's, for those."""
    base = snapshot.base
    assert base is not None  # light
    kept = snapshot.kept
    before = prior.values
    due = {p for p, held in base.items() if before.get(p) is not held}
    due.update(p for p in prior.due if p in base)
    due.update(p for p in extra.keys() | prior.extra.keys() if extra.get(p) != prior.extra.get(p))
    evaluated = engagement_refresh.evaluate(store, snapshot.tracked)
    engaged = evaluated.values
    due.update(p for p, answers in engaged.items() if _differs(base.get(p), answers, _ENGAGED))
    spent = catalogue.valued_on_refresh(store, rules, snapshot.now, products)
    due.update(p for p, found in spent.items() if _differs(base.get(p), found))
    tiles = rfm_tiles(base)
    due.update(tiles.changed_since(prior.tiles))
    due.update(p for p in prior.spent if p not in spent)  # a spend that goes
    due.intersection_update(base.keys() | spent.keys() | engaged.keys() | extra.keys())
    values: Values = {}
    for profile in due:
        held = base.get(profile, {})
        values[profile] = {n: v for n, v in held.items() if n in kept}
        values[profile].update(spent.get(profile, {}))
    mine: dict[str, Mapping[str, Any]] = {}
    for profile in due:
        if profile in engaged:
            mine[profile] = engaged[profile]
        elif engagement.BY_CHANNEL.name in (held := base.get(profile, {})):
            mine[profile] = {n: held[n] for n in _ENGAGED if n in held}
    catalogue.finished(store, values, rules, mine, tiles.scores(tiles.rows_of(due)))
    for profile in due:
        if profile in extra:
            values[profile].update(extra[profile])
    return Refreshed(
        snapshot, values, evaluated.tracked, partial=True, rules=rules, extra=extra,
        tiles=tiles, spent=frozenset(spent),
    )  # fmt: skip


def _differs(
    held: Mapping[str, Any] | None, found: Mapping[str, Any], names: Iterable[str] | None = None
) -> bool:
    """Whether memory's values (`held`) differ from those `found`, for `names` (those
    `found` has by default; a name it lacks is given as None)."""
    if held is None:
        return True
    return any(
        name not in held or held[name] != found.get(name) for name in (names or found.keys())
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
        if profile in snapshot.removed or (refreshed.partial and profile not in new):
            continue  # a partial refresh without it: memory's values stand
        # The batches valued these after the snapshot (a batch values the traits its
        # events matched): theirs are newer. The others are the snapshot's, valued for
        # its day, which memory may not be yet.
        current = memory.get(profile, {})
        mine = new.get(profile, {})
        merged = {n: v for n, v in mine.items() if n not in names}
        merged.update((n, current[n]) for n in names if n in current)
        new[profile] = merged
    emptied = {p for p, d in new.items() if not d}
    for profile in emptied:
        del new[profile]
    changed = {p: d for p, d in new.items() if memory.get(p) != d}
    if refreshed.partial:  # the profiles it lacks keep memory's values
        return changed, {p for p in emptied if p in memory}
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
