"""Computed traits kept incrementally: per-profile aggregates, updated from each batch.

Each (profile, trait) holds buckets by UTC day of the event's time (one bucket, day 0,
for a trait without a window). A bucket holds what the trait's function needs to be
combined with others, so that adding an event, merging two profiles and reading a value
are independent of the history's length:

    count                 matching events
    sum avg min max       the number of numeric values, their total, the lowest, the highest
    first last            (time, seq, value) of the earliest / latest event with a value
    distinct_count        the exact values with their counts (a set; see below)
    most_frequent         the values with their counts
    recency_days          the time of the latest matching event

A value is read by combining the buckets inside the window: a window of N days holds the
days from N days before today's UTC date on, so it slides at midnight without reading
the log again. Buckets that have left every window are dropped (`prune`).

Distinct values are kept exactly (a counter of values per day bucket): a sketch
(HyperLogLog) would bound the memory of a trait over unbounded values (an order id, a
URL), at ~1-2% error; the values traits are written for (categories, products, channels)
are few per person, and exact is what the full recompute answers. docs/computed-traits.md
gives the measured cost.

Everything here is pure: the pipeline feeds it (`profiles/aggregate_store.py` reads the
batch's events and persists the state), and the full recompute (`computed.compile_all`)
is the check that the values are equal.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import orjson

from tessera.profiles.computed import RFM_NAMES, ComputedTrait

DAY_MICROSECONDS = 86_400_000_000
#: the one bucket of a trait without a window
ALL_TIME = 0
#: buckets are kept this many days past their window, in case the clock steps back
PRUNE_MARGIN_DAYS = 2

_EPOCH = date(1970, 1, 1)
Moment = tuple[int, int, Any]  # (time in µs since the epoch, seq, value)


def day_of(microseconds: int) -> int:
    """The UTC day (days since 1970-01-01) of a time in microseconds since the epoch."""
    return microseconds // DAY_MICROSECONDS


def day_number(moment: datetime) -> int:
    """The UTC day number of a moment: aware, or naive UTC as the store keeps times."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment.date() - _EPOCH).days


def trait_key(trait: ComputedTrait) -> str:
    """A short fingerprint of a definition: a changed definition is another trait."""
    text = orjson.dumps(trait.to_dict(), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()[:16]


def _number_order(value: float) -> tuple[bool, float]:
    # DuckDB orders NaN above every number; Python's comparisons with NaN are all False.
    return (math.isnan(value), value)


@dataclass(slots=True)
class Bucket:
    """One day's (or all time's) aggregate of one trait for one profile."""

    count: int = 0
    numbers: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    first: Moment | None = None
    last: Moment | None = None
    latest: int | None = None
    values: Counter[str] | None = None

    def add(self, function: str, at: int, seq: int, value: Any) -> None:
        """Count one matching event (its time in µs, its seq and the value it carries)."""
        self.count += 1
        if function in ("sum", "avg", "min", "max"):
            if value is not None:
                self._number(float(value))
        elif function == "first" or function == "last":
            if value is not None:
                moment = (at, seq, value)
                if self.first is None or moment[:2] < self.first[:2]:
                    self.first = moment
                if self.last is None or moment[:2] > self.last[:2]:
                    self.last = moment
        elif function == "distinct_count" or function == "most_frequent":
            if value is not None:
                if self.values is None:
                    self.values = Counter()
                self.values[value] += 1
        elif function == "recency_days" and (self.latest is None or at > self.latest):
            self.latest = at

    def add_items(
        self, function: str, at: int, seq: int, items: list[dict[str, Any]] | str | None
    ) -> None:
        """Count one matching event of an itemised trait (`by:`): its items, each a key
        (a product's category...; None when unknown) and an amount, or its one key (a
        channel, an hour of the week: amount 1)."""
        self.count += 1
        if isinstance(items, str):
            if function in ("count_by", "most_frequent", "distinct_count"):  # the hot path
                if self.values is None:
                    self.values = Counter()
                self.values[items] += 1
                return
            items = [{"k": items, "amount": 1.0}]
        keyed = [item for item in items or () if item.get("k") is not None]
        if not keyed:
            return
        if function == "first" or function == "last":
            first = (at, seq, keyed[0]["k"])
            last = (at, seq, keyed[-1]["k"])
            if self.first is None or first[:2] < self.first[:2]:
                self.first = first
            if self.last is None or last[:2] > self.last[:2]:
                self.last = last
            return
        if self.values is None:
            self.values = Counter()
        for item in keyed:
            if function == "sum_by":
                # Counter holds amounts here: it adds floats as it adds counts
                self.values[item["k"]] += item.get("amount") or 0.0  # type: ignore[assignment]
            else:
                self.values[item["k"]] += 1

    def _number(self, number: float) -> None:
        self.numbers += 1
        self.total += number
        if self.low is None or _number_order(number) < _number_order(self.low):
            self.low = number
        if self.high is None or _number_order(number) > _number_order(self.high):
            self.high = number

    def absorb(self, other: Bucket) -> None:
        """Combine another bucket of the same trait into this one (a merge, a window)."""
        self.count += other.count
        self.numbers += other.numbers
        self.total += other.total
        for low in (other.low,) if other.low is not None else ():
            if self.low is None or _number_order(low) < _number_order(self.low):
                self.low = low
        for high in (other.high,) if other.high is not None else ():
            if self.high is None or _number_order(high) > _number_order(self.high):
                self.high = high
        if other.first is not None and (self.first is None or other.first[:2] < self.first[:2]):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last[:2] > self.last[:2]):
            self.last = other.last
        if other.latest is not None and (self.latest is None or other.latest > self.latest):
            self.latest = other.latest
        if other.values:
            if self.values is None:
                self.values = Counter()
            self.values.update(other.values)

    def value(self, function: str, today: int) -> Any:
        """The trait's value from this (combined) bucket, as the full recompute gives it."""
        if function == "count":
            return self.count
        if function == "sum":
            return self.total if self.numbers else None
        if function == "avg":
            return self.total / self.numbers if self.numbers else None
        if function == "min":
            return self.low
        if function == "max":
            return self.high
        if function == "first":
            return self.first[2] if self.first else None
        if function == "last":
            return self.last[2] if self.last else None
        if function == "distinct_count":
            return len(self.values) if self.values else 0
        if function == "count_by":
            return dict(sorted(self.values.items())) if self.values else {}
        if function == "sum_by":
            if not self.values:
                return {}
            return {key: round(total, 2) for key, total in sorted(self.values.items())}
        if function == "most_frequent":
            if not self.values:
                return None
            # the most frequent; on a tie the smallest value (`mode(v ORDER BY v)`)
            return min(self.values.items(), key=lambda item: (-item[1], item[0]))[0]
        assert function == "recency_days", function
        return today - day_of(self.latest) if self.latest is not None else None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Bucket:
        """A bucket as orjson wrote it (a dataclass is written as its fields)."""
        first, last, values = raw["first"], raw["last"], raw["values"]
        return cls(
            raw["count"],
            raw["numbers"],
            raw["total"],
            raw["low"],
            raw["high"],
            (first[0], first[1], first[2]) if first else None,
            (last[0], last[1], last[2]) if last else None,
            raw["latest"],
            Counter(values) if values else None,
        )


#: a profile's state: trait key → day → bucket
ProfileState = dict[str, dict[int, Bucket]]


@dataclass
class Aggregates:
    """Every live profile's aggregates for a set of trait definitions."""

    traits: list[ComputedTrait]
    profiles: dict[str, ProfileState] = field(default_factory=dict)
    #: today's UTC day number, when the clock is known: an event too old for its window
    #: today will never be inside it again (the clock moves on) and is not kept
    today: int | None = None

    def __post_init__(self) -> None:
        self.keys = [trait_key(t) for t in self.traits]

    def add(self, profile: str, index: int, at: int, seq: int, value: Any) -> None:
        """One matching event of trait number `index` (in `traits`) for `profile`."""
        trait = self.traits[index]
        if trait.window_days is None:
            day = ALL_TIME
        else:
            day = day_of(at)
            if self.today is not None and day < self.today - trait.window_days - PRUNE_MARGIN_DAYS:
                return
        buckets = self.profiles.setdefault(profile, {}).setdefault(self.keys[index], {})
        bucket = buckets.get(day)
        if bucket is None:
            bucket = buckets[day] = Bucket()
        if trait.by is not None:
            bucket.add_items(trait.function, at, seq, value)
        else:
            bucket.add(trait.function, at, seq, value)

    def merge(self, into: str, absorbed: str) -> None:
        """`absorbed` was merged into `into`: its aggregates join theirs."""
        state = self.profiles.pop(absorbed, None)
        if not state:
            return
        target = self.profiles.setdefault(into, {})
        for key, buckets in state.items():
            mine = target.setdefault(key, {})
            for day, bucket in buckets.items():
                found = mine.get(day)
                if found is None:
                    mine[day] = bucket
                else:
                    found.absorb(bucket)

    def forget(self, profiles: Iterable[str]) -> None:
        for profile in profiles:
            self.profiles.pop(profile, None)

    def values(
        self, profile: str, today: int, indices: Iterable[int] | None = None
    ) -> dict[str, Any]:
        """The profile's computed traits on `today` (a UTC day number): only the traits
        with at least one matching event in their window, as the full recompute; only
        the traits numbered `indices` when given."""
        state = self.profiles.get(profile)
        found: dict[str, Any] = {}
        if not state:
            return found
        chosen = range(len(self.traits)) if indices is None else indices
        for index in chosen:
            trait, key = self.traits[index], self.keys[index]
            buckets = state.get(key)
            if not buckets:
                continue
            combined = _combined(buckets, trait, today)
            if combined is not None and combined.count:
                found[trait.name] = combined.value(trait.function, today)
        return found

    def prune(self, today: int, profiles: Iterable[str] | None = None) -> None:
        """Drop the buckets that have left their window for good (the clock moves on),
        of every profile or of these."""
        self.today = today
        windows = {
            key: trait.window_days
            for trait, key in zip(self.traits, self.keys, strict=True)
            if trait.window_days is not None
        }
        if not windows:
            return
        chosen = (
            self.profiles.values()
            if profiles is None
            else (state for p in profiles if (state := self.profiles.get(p)) is not None)
        )
        for state in chosen:
            for key, window in windows.items():
                buckets = state.get(key)
                if not buckets:
                    continue
                oldest = today - window - PRUNE_MARGIN_DAYS
                for day in [d for d in buckets if d < oldest]:
                    del buckets[day]

    def state_json(self, profile: str) -> str | None:
        """The profile's state for the store; None when it has none."""
        state = self.profiles.get(profile)
        if not state:
            return None
        # orjson writes the dataclasses itself (in C): ~5x faster than lists built here
        return orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS).decode()

    def load_json(self, profile: str, raw: str) -> None:
        """Restore a profile's state as `state_json` wrote it (keys of unknown traits go)."""
        known = set(self.keys)
        self.profiles[profile] = {
            key: {int(day): Bucket.from_dict(bucket) for day, bucket in buckets.items()}
            for key, buckets in orjson.loads(raw).items()
            if key in known
        }


def _combined(buckets: dict[int, Bucket], trait: ComputedTrait, today: int) -> Bucket | None:
    if trait.window_days is None:
        return buckets.get(ALL_TIME)
    since = today - trait.window_days
    inside = [bucket for day, bucket in buckets.items() if day >= since]
    if not inside:
        return None
    if len(inside) == 1:
        return inside[0]
    combined = Bucket()
    for bucket in inside:
        combined.absorb(bucket)
    return combined


def rfm(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """RFM scores from the built-in order traits of every profile: quintiles 1-5 over
    the profiles with an order (ntile(5), ties ranked by profile id, as `RFM_SQL`)."""
    tiles = rfm_tiles(values)
    return tiles.scores(range(len(tiles.ids)))


@dataclass(frozen=True)
class Tiles:
    """Every orderer's RFM quintiles: `ids` sorted, `tiles[i]` the recency, frequency
    and monetary tiles of `ids[i]` (numpy arrays, so that two refreshes' are compared
    without a dict per profile)."""

    ids: np.ndarray
    tiles: np.ndarray

    def scores(self, rows: Iterable[int]) -> dict[str, dict[str, Any]]:
        """The RFM traits of the profiles at these rows."""
        found: dict[str, dict[str, Any]] = {}
        for row in rows:
            r, f, m = (int(t) for t in self.tiles[row])
            found[str(self.ids[row])] = dict(zip(RFM_NAMES, (r, f, m, f"{r}{f}{m}"), strict=True))
        return found

    def rows_of(self, profiles: Iterable[str]) -> list[int]:
        """The rows of those of `profiles` that have an order."""
        wanted = np.array(sorted(profiles), dtype=str)
        if not len(self.ids) or not len(wanted):
            return []
        at = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        rows: list[int] = at[self.ids[at] == wanted].tolist()
        return rows

    def changed_since(self, before: Tiles) -> set[str]:
        """The profiles whose tiles differ from `before`'s, those without an order in
        either included."""
        changed = set(self.ids[~_matched(self, before)].tolist())
        changed.update(before.ids[~_matched(before, self, tiles=False)].tolist())
        return changed


def _matched(one: Tiles, other: Tiles, *, tiles: bool = True) -> np.ndarray:
    """Per row of `one`: its profile is in `other` (with the same tiles, when `tiles`)."""
    if not len(other.ids) or not len(one.ids):
        return np.zeros(len(one.ids), dtype=bool)
    at = np.minimum(np.searchsorted(other.ids, one.ids), len(other.ids) - 1)
    found = other.ids[at] == one.ids
    if tiles:
        found &= (other.tiles[at] == one.tiles).all(axis=1)
    return np.asarray(found, dtype=bool)


def rfm_tiles(values: Mapping[str, Mapping[str, Any]]) -> Tiles:
    """`rfm`'s quintiles, as arrays: the three rankings sorted by numpy (ties by the
    profile's place among the ids, sorted)."""
    orders = sorted(
        (profile, traits["days_since_last_order"], traits["order_count"],
         traits.get("total_revenue") or 0.0)
        for profile, traits in values.items()
        if traits.get("order_count")
    )  # fmt: skip
    count = len(orders)
    ids = np.array([o[0] for o in orders], dtype=str)
    tiles = np.zeros((count, 3), dtype=np.int8)
    if count:
        place = np.arange(count)
        positions = np.array(ntiles(count, 5), dtype=np.int8)
        keys = (
            -np.array([o[1] for o in orders], dtype=np.float64),  # the most days first
            np.array([o[2] for o in orders], dtype=np.float64),
            np.array([o[3] for o in orders], dtype=np.float64),
        )
        for column, key in enumerate(keys):
            tiles[np.lexsort((place, key)), column] = positions
    return Tiles(ids, tiles)


def ntiles(rows: int, tiles: int) -> list[int]:
    """SQL's ntile(tiles) over `rows` ordered rows: the first rows % tiles tiles hold one
    row more than the others."""
    size, larger = divmod(rows, tiles)
    out: list[int] = []
    for tile in range(1, tiles + 1):
        out.extend([tile] * (size + (1 if tile <= larger else 0)))
    return out
