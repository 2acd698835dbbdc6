"""The best channel and the best time to reach each person, from their engagement.

The pipeline keeps two built-in itemised traits: `engagement_by_channel` (each person's
events counted by the channel of the source that sent them: web, app, email, shop,
call centre...) and `engagement_by_hour` (by UTC hour of the week, 0 = Monday 00:00).
Every refresh derives from them, for each person with any engagement:

- `best_channel`: the channel with the highest smoothed share of the person's events,
  (n_c + k * P_c) / (n + k), where P_c is the channel's share over everyone and k =
  PRIOR_WEIGHT: one event on a rare channel does not outweigh the population's habits,
  and a person with no engagement gets the population's best (empirical Bayes shrinkage,
  as in additive smoothing of a multinomial toward a prior).
- `best_hour_of_week` and `best_time` ("Tuesday 18:00 UTC"): the same over the 168 hours,
  each person's counts first smoothed over the neighbouring hours (an event at 18:05
  says something about 17:00 and 19:00 too), then shrunk toward the population.

The counts themselves are the evidence the 360° view shows. `DERIVED_SQL` derives all
three in one SQL query over the log (DuckDB, in parallel, without the GIL; in Python it
took ~3 s per 100k people, on the pipeline's thread): the full recompute's and Spark's.
The refresh runs the same counts and choice with the evidence beside them, for the people
whose answer can have changed only (`engagement_refresh.py`). `derive` below is the
same definition in Python, values in and values out: the reference a property test
holds the SQL to. One difference, on purpose: two keys the person has no count of whose
shares differ by less than 1e-12 go to the higher population share in SQL, to the
smaller key in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tessera.profiles.computed import ComputedTrait

BY_CHANNEL = ComputedTrait("engagement_by_channel", "count_by", None, by="channel")
BY_HOUR = ComputedTrait("engagement_by_hour", "count_by", None, by="hour_of_week")
NAMES = ("best_channel", "best_hour_of_week", "best_time")
#: the two traits that are the evidence of those
EVIDENCE = frozenset({BY_CHANNEL.name, BY_HOUR.name})
#: how many events' worth of weight the population's habits carry for one person
PRIOR_WEIGHT = 5.0
HOURS = 168
_HOUR_KEYS = tuple(str(hour) for hour in range(HOURS))
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def population(values: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, float]:
    """Everyone's counts of one trait summed, as shares (empty when nobody has any)."""
    return _shares(traits.get(name) or {} for traits in values.values())


def _shares(everyone: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for counts in everyone:
        for key, count in counts.items():
            total[key] = total.get(key, 0) + count
    size = sum(total.values())
    return {key: count / size for key, count in total.items()} if size else {}


def best(
    counts: Mapping[str, float],
    prior: Mapping[str, float],
    order: Sequence[str] | None = None,
) -> str | None:
    """The key with the highest smoothed share; ties go to the smaller key. `order` (the
    prior's keys by `ranking`) lets it score only the person's own keys and the best of
    the others, instead of every key of the population (168 hours) for every person:
    a key the person has no count of scores PRIOR_WEIGHT * P / (size + PRIOR_WEIGHT),
    which falls with P, so the first such key in that order (with those it ties once
    rounded) is the best of them."""
    size = sum(counts.values())

    def score(key: str) -> tuple[float, str]:
        share = (counts.get(key, 0) + PRIOR_WEIGHT * prior.get(key, 0.0)) / (size + PRIOR_WEIGHT)
        return (-round(share, 12), key)

    if order is None:
        keys = set(counts) | set(prior)
    else:
        keys = set(counts)
        top: float | None = None
        for key in order:
            if key in counts:
                continue
            rounded = score(key)[0]
            if top is not None and rounded != top:
                break
            top = rounded
            keys.add(key)
    return min(keys, key=score) if keys else None


def ranking(prior: Mapping[str, float]) -> list[str]:
    """The prior's keys, highest share first (ties: the smaller key), for `best`."""
    return sorted(prior, key=lambda key: (-prior[key], key))


def spread_hours(counts: Mapping[str, float]) -> dict[str, float]:
    """Each hour's count with half of each neighbour's (the week wraps round)."""
    spread: dict[str, float] = {}
    for key, count in counts.items():
        hour = int(key)
        for other, weight in ((hour, 1.0), ((hour - 1) % HOURS, 0.5), ((hour + 1) % HOURS, 0.5)):
            name = _HOUR_KEYS[other]
            spread[name] = spread.get(name, 0.0) + weight * count
    return spread


def time_of(hour: int) -> str:
    return f"{_DAYS[hour // 24]} {hour % 24:02d}:00 UTC"


def derive(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """best_channel, best_hour_of_week and best_time for every person with engagement."""
    channels = population(values, BY_CHANNEL.name)
    # each person's hours spread once: for the population's prior and for their own best
    spreads = {p: spread_hours(t[BY_HOUR.name]) for p, t in values.items() if t.get(BY_HOUR.name)}
    hours_prior = _shares(spreads.values())
    channel_order, hour_order = ranking(channels), ranking(hours_prior)
    found: dict[str, dict[str, Any]] = {}
    for profile, traits in values.items():
        by_channel = traits.get(BY_CHANNEL.name)
        if by_channel is None and traits.get(BY_HOUR.name) is None:
            continue
        derived: dict[str, Any] = {"best_channel": best(by_channel or {}, channels, channel_order)}
        hour = best(spreads.get(profile, {}), hours_prior, hour_order)
        derived["best_hour_of_week"] = int(hour) if hour is not None else None
        derived["best_time"] = time_of(int(hour)) if hour is not None else None
        found[profile] = derived
    return found


def _best_sql(kind: str, own: str) -> str:
    """CTEs choosing, for each person of `people`, the key of `own` (profile_id, k, n)
    with the highest smoothed share (as `best`): among their own keys and the population's
    best key they have no count of (the first in the ranking that is not theirs, found
    among the first m + 1 for someone with m keys; the first of all for someone with none).
    The choice is an aggregate (`arg_min` over (-share, key): ties to the smaller key),
    not a window: a window sorted every candidate of everyone, ~0.7 s of 3.2 per 100k
    people."""
    return f"""
{kind}_prior AS (
    SELECT k, sum(n) / (SELECT sum(n) FROM {own}) AS p FROM {own} GROUP BY k),
{kind}_ranked AS (
    SELECT k, row_number() OVER (ORDER BY p DESC, k) AS r FROM {kind}_prior),
{kind}_sizes AS (
    SELECT profile_id, sum(n) AS s, count(*) AS m FROM {own} GROUP BY ALL),
{kind}_other AS (
    SELECT z.profile_id, arg_min(r.k, r.r) AS k
    FROM {kind}_sizes z JOIN {kind}_ranked r ON r.r <= z.m + 1
    ANTI JOIN {own} o ON o.profile_id = z.profile_id AND o.k = r.k
    GROUP BY ALL
    UNION ALL
    SELECT people.profile_id, r.k FROM people JOIN {kind}_ranked r ON r.r = 1
    ANTI JOIN {kind}_sizes z ON z.profile_id = people.profile_id),
{kind}_best AS (
    SELECT c.profile_id, arg_min(c.k, struct_pack(
        share := -round((c.n + {PRIOR_WEIGHT} * pr.p) / (coalesce(z.s, 0) + {PRIOR_WEIGHT}), 12),
        k := c.k)) AS k
    FROM (SELECT profile_id, k, n FROM {own}
          UNION ALL SELECT profile_id, k, 0 FROM {kind}_other) c
    JOIN {kind}_prior pr ON pr.k = c.k
    LEFT JOIN {kind}_sizes z ON z.profile_id = c.profile_id
    GROUP BY ALL)"""


def hour_of_week(column: str) -> str:
    """SQL for the UTC hour of the week of a timestamp column, 0 = Monday 00:00."""
    return f"(isodow({column}) - 1) * 24 + hour({column})"


_DAY_LIST = "[" + ", ".join(f"'{day}'" for day in _DAYS) + "]"
#: each person's counts per channel and per hour of the week, from the log (events
#: attributed to live profiles), and the CTEs choosing their best of each
#: the counts per person, from `ev` (profile_id, channel, timestamp): the people, their
#: counts per channel and per hour of the week, and the hours spread to their neighbours
COUNTS = f"""people AS (SELECT DISTINCT profile_id FROM ev),
channels AS (
    SELECT profile_id, channel AS k, count(*)::DOUBLE AS n FROM ev
    WHERE channel IS NOT NULL GROUP BY ALL),
hours AS (
    SELECT profile_id, {hour_of_week("timestamp")} AS h,
           count(*)::DOUBLE AS n
    FROM ev WHERE timestamp IS NOT NULL GROUP BY ALL),
spread AS (
    SELECT profile_id, k::TEXT AS k, sum(n) AS n FROM (
        SELECT profile_id, h AS k, n FROM hours
        UNION ALL SELECT profile_id, (h + {HOURS - 1}) % {HOURS}, 0.5 * n FROM hours
        UNION ALL SELECT profile_id, (h + 1) % {HOURS}, 0.5 * n FROM hours)
    GROUP BY ALL)"""
#: every event attributed to a live profile: (profile_id, channel, timestamp), as COUNTS reads
EVERYONE_EV = """ev AS (
    SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.channel, e.timestamp
    FROM events e JOIN event_profiles ep ON ep.seq = e.seq
    LEFT JOIN profiles p ON p.profile_id = ep.profile_id)"""
_COUNTED = f"""
WITH {EVERYONE_EV},
{COUNTS},
{_best_sql("channel", "channels")},
{_best_sql("hour", "spread")}"""
#: the answer's columns (profile_id, best_channel, best_hour_of_week, best_time), from the
#: CTEs above (people, channel_best and hour_best, each best's key as k)
BEST_COLUMNS = f"""people.profile_id, c.k AS channel, h.k::INTEGER AS hour,
       {_DAY_LIST}[hour // 24 + 1] || ' ' || lpad((hour % 24)::TEXT, 2, '0') || ':00 UTC'"""
BEST_FROM = """FROM people
LEFT JOIN channel_best c ON c.profile_id = people.profile_id
LEFT JOIN hour_best h ON h.profile_id = people.profile_id"""
_BEST = f"""{BEST_COLUMNS}
{BEST_FROM}"""

#: (profile_id, best_channel, best_hour_of_week, best_time) of every person with an event,
#: from the log (events attributed to live profiles); NULL where nobody has a key. Spark
#: runs the same text transpiled (`spark/run.py`, `profiles/dialect.py`).
DERIVED_SQL = f"""{_COUNTED}
SELECT {_BEST}
"""
