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

The counts themselves are the evidence the 360° view shows. Pure: values in, values out;
`catalogue.current` and `catalogue.recompute` call it on their values, so the
incremental and full answers agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tessera.profiles.computed import ComputedTrait

BY_CHANNEL = ComputedTrait("engagement_by_channel", "count_by", None, by="channel")
BY_HOUR = ComputedTrait("engagement_by_hour", "count_by", None, by="hour_of_week")
NAMES = ("best_channel", "best_hour_of_week", "best_time")
#: how many events' worth of weight the population's habits carry for one person
PRIOR_WEIGHT = 5.0
HOURS = 168
_HOUR_KEYS = tuple(str(hour) for hour in range(HOURS))
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def population(values: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, float]:
    """Everyone's counts of one trait summed, as shares (empty when nobody has any)."""
    return _shares(traits.get(name) or {} for traits in values.values())


def _shares(everyone: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: Counter[str] = Counter()
    for counts in everyone:
        for key, count in counts.items():
            total[key] += count
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
