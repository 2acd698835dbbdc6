"""Best channel and time kept by the refresh for the people whose answer can have changed.

Reading the whole log for everyone's engagement counts and best channel and time
(`EVERYONE_SQL` below: `engagement.DERIVED_SQL` with the evidence) takes 2.5-3.5 s of one
thread (and DuckDB's others) per 100k people and 3 million events, each time the
pipeline's refresh runs, on the two cores that answer decisions. Yet between two refreshes
only two things move an answer:

- a person's own counts, when events were attributed to them (or their profile absorbed
  another's): those people are *touched*, found in the log by seq (events attributed
  since the last refresh) and in the ledger (merges since);
- the population's shares P (the prior every person is smoothed toward). A key's smoothed
  share is (n_k + w P_k) / (n + w), so when the P_k move by amounts whose largest less
  smallest is d (the *drift*), any two keys' shares move apart by at most w d / (n + w):
  a person whose best key led the second by a gap g keeps it while the prior has drifted
  less than g (n + w) / w since they were valued (their *budget*; the drift is added up
  refresh after refresh, and the sum bounds the drift over them all).

So `evaluate` values, from the log, only the touched people and those whose budget the
drift has used up (`Tracked` remembers each person's threshold: the drift at which to
value them again), and keeps everyone else's answer and evidence as memory holds them.
The population's counts per key are kept too: the counts of the events attributed since
are added (whole numbers, so the sums, and the shares divided from them, are the same
bits whatever the order: the answers equal the query over everyone, which the property
test `tests/integration/test_engagement_refresh.py` holds them to). The gap is taken on
the shares rounded as the answer rounds them, less 1e-9 for that rounding.

Everyone is valued again (and the memory starts over) when there is none yet, when the
log lost events since (retention, the anonymous lifetime: counts would fall), or when more
than half of the people would be valued anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tessera.profiles import engagement
from tessera.profiles.computed import keyed_json
from tessera.profiles.engagement import HOURS, PRIOR_WEIGHT
from tessera.store import Store

#: the rounding of a share (12 decimals) and float error, taken off every gap
_SLACK = 1e-9
#: past this share of the people to value, everyone is valued (one pass is cheaper)
_EVERYONE_SHARE = 0.5
_KEYED = keyed_json("duckdb").sql(dialect="duckdb")
_HOUR = engagement.hour_of_week("e.timestamp")


@dataclass(frozen=True)
class Tracked:
    """What the last refresh valued, to value only what can have changed the next time."""

    #: the log as that refresh read it: the last attributed seq, how many events and
    #: attributions had a seq up to it, the last ledger entry
    seq: int
    events: int
    attributed: int
    ledger: int
    #: the population's counts per channel and per hour of the week (raw, not spread)
    channels: dict[str, int]
    hours: dict[int, int]
    #: the shares every person was smoothed toward, and the drift added up so far
    channel_prior: dict[str, float]
    hour_prior: dict[str, float]
    channel_drift: float
    hour_drift: float
    #: each valued person's position in the thresholds: the drift at which to value
    #: them again, per kind
    index: dict[str, int]
    channel_at: np.ndarray
    hour_at: np.ndarray

    def due(self, channel_drift: float, hour_drift: float) -> list[str]:
        """The people whose budget the drift since they were valued has used up, when the
        drift added up is now `channel_drift` and `hour_drift`."""
        if not self.index:
            return []
        ids = np.fromiter(self.index, dtype=object, count=len(self.index))
        mask = (self.channel_at < channel_drift) | (self.hour_at < hour_drift)
        return list(ids[mask])


@dataclass(frozen=True)
class Evaluated:
    #: per valued person: engagement_by_channel, engagement_by_hour and the three answers
    values: dict[str, dict[str, Any]]
    tracked: Tracked
    everyone: bool


def _counted(restricted: bool) -> str:
    """`engagement.COUNTS` over everyone's events, or over those of the people in
    `wanted` when `restricted` (found through event_profiles' own ids, the profiles they
    absorbed included, so that DuckDB filters the attributions before the join)."""
    if restricted:
        ev = """
wanted_ids AS (
    SELECT unnest($due) AS profile_id
    UNION ALL SELECT ep.profile_id FROM event_profiles ep WHERE ep.seq > $since
    UNION ALL SELECT profile_id FROM identity_ledger WHERE id > $ledger AND kind = 'merge'),
wanted AS (
    SELECT DISTINCT coalesce(p.merged_into, w.profile_id) AS profile_id
    FROM wanted_ids w LEFT JOIN profiles p ON p.profile_id = w.profile_id),
raw AS (
    SELECT profile_id FROM wanted
    UNION SELECT p.profile_id FROM profiles p SEMI JOIN wanted w ON w.profile_id = p.merged_into),
ev AS (
    SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.channel, e.timestamp
    FROM event_profiles ep SEMI JOIN raw r ON r.profile_id = ep.profile_id
    JOIN events e ON e.seq = ep.seq
    LEFT JOIN profiles p ON p.profile_id = ep.profile_id)"""
    else:
        ev = engagement.EVERYONE_EV
    return f"WITH {ev},\n{engagement.COUNTS}"


def _top_two(kind: str, own: str) -> str:
    """`engagement._best_sql` with the prior given ($kind_k, $kind_p) and the two best
    keys kept (the best, and the gap to the second: a key nobody has counts 0)."""
    return f"""
{kind}_prior AS (SELECT unnest(${kind}_k) AS k, unnest(${kind}_p) AS p),
{kind}_ranked AS (
    SELECT k, row_number() OVER (ORDER BY p DESC, k) AS r FROM {kind}_prior),
{kind}_sizes AS (
    SELECT profile_id, sum(n) AS s, count(*) AS m FROM {own} GROUP BY ALL),
{kind}_other AS (
    SELECT profile_id, unnest(ks) AS k FROM (
        SELECT z.profile_id, arg_min(r.k, r.r, 2) AS ks
        FROM {kind}_sizes z JOIN {kind}_ranked r ON r.r <= z.m + 2
        ANTI JOIN {own} o ON o.profile_id = z.profile_id AND o.k = r.k
        GROUP BY ALL)
    UNION ALL
    SELECT people.profile_id, r.k FROM people JOIN {kind}_ranked r ON r.r <= 2
    ANTI JOIN {kind}_sizes z ON z.profile_id = people.profile_id),
{kind}_top AS (
    SELECT c.profile_id, min(struct_pack(
        share := -round((c.n + {PRIOR_WEIGHT} * pr.p) / (coalesce(z.s, 0) + {PRIOR_WEIGHT}), 12),
        k := c.k), 2) AS top, coalesce(any_value(z.s), 0) AS s
    FROM (SELECT profile_id, k, n FROM {own}
          UNION ALL SELECT profile_id, k, 0 FROM {kind}_other) c
    JOIN {kind}_prior pr ON pr.k = c.k
    LEFT JOIN {kind}_sizes z ON z.profile_id = c.profile_id
    GROUP BY c.profile_id),
{kind}_best AS (
    SELECT profile_id, top[1].k AS k,
           (coalesce(top[2].share, 0) - top[1].share - {_SLACK}) * (s + {PRIOR_WEIGHT})
               / {PRIOR_WEIGHT} AS budget
    FROM {kind}_top)"""


def _query(restricted: bool) -> str:
    return f"""{_counted(restricted)},
{_top_two("channel", "channels")},
{_top_two("hour", "spread")},
channel_evidence AS (
    SELECT profile_id, {_KEYED} AS j
    FROM (SELECT profile_id, k, n::BIGINT AS total FROM channels) GROUP BY ALL),
hour_evidence AS (
    SELECT profile_id, {_KEYED} AS j
    FROM (SELECT profile_id, h::TEXT AS k, n::BIGINT AS total FROM hours) GROUP BY ALL)
SELECT coalesce(ce.j, '{{}}'), coalesce(he.j, '{{}}'), {engagement.BEST_COLUMNS},
       c.budget, h.budget
{engagement.BEST_FROM}
LEFT JOIN channel_evidence ce ON ce.profile_id = people.profile_id
LEFT JOIN hour_evidence he ON he.profile_id = people.profile_id
"""


EVERYONE_SQL = _query(False)
DUE_SQL = _query(True)
#: the population's counts per key, of the events attributed after $since
_TOTALS_SQL = f"""
SELECT 'c', e.channel, count(*) FROM event_profiles ep JOIN events e ON e.seq = ep.seq
WHERE ep.seq > $since AND e.channel IS NOT NULL GROUP BY ALL
UNION ALL
SELECT 'h', ({_HOUR})::TEXT, count(*) FROM event_profiles ep JOIN events e ON e.seq = ep.seq
WHERE ep.seq > $since AND e.timestamp IS NOT NULL GROUP BY ALL
"""
#: the log's marks: the last attributed seq; the events and attributions up to $before
#: and up to that seq (a count that changed below a seq already read: events were
#: deleted, or attributed again); the last ledger entry
_MARKS_SQL = """
WITH last AS (SELECT coalesce(max(seq), 0) AS seq FROM event_profiles)
SELECT last.seq,
       (SELECT count(*) FROM events WHERE seq <= $before),
       (SELECT count(*) FROM event_profiles WHERE seq <= $before),
       (SELECT count(*) FROM events WHERE seq <= last.seq),
       (SELECT count(*) FROM event_profiles WHERE seq <= last.seq),
       (SELECT coalesce(max(id), 0) FROM identity_ledger)
FROM last
"""


def _shares(counts: Mapping[Any, float]) -> dict[str, float]:
    total = float(sum(counts.values()))
    return {str(k): n / total for k, n in counts.items()} if total else {}


def _spread(hours: Mapping[int, int]) -> dict[int, float]:
    """The population's counts per hour spread as each person's are (half to each
    neighbour): sums of whole and half numbers, the same whatever the order."""
    spread: dict[int, float] = {}
    for hour, count in hours.items():
        for other, weight in ((hour, 1.0), ((hour - 1) % HOURS, 0.5), ((hour + 1) % HOURS, 0.5)):
            spread[other] = spread.get(other, 0.0) + weight * count
    return spread


def _drift(old: Mapping[str, float], new: Mapping[str, float]) -> float:
    """How far apart the prior's change can move two keys' shares: the largest change
    less the smallest, 0 among them (a key neither prior has, which a person may still be
    compared with, moves by 0: when the first key appears after none, the changes are all
    positive)."""
    moved = [new.get(k, 0.0) - old.get(k, 0.0) for k in old.keys() | new.keys()]
    return max([0.0, *moved]) - min([0.0, *moved])


def evaluate(store: Store, tracked: Tracked | None) -> Evaluated:
    """The engagement evidence and best channel and time of the people whose answer can
    have changed since `tracked` (everyone's without it), and what to remember for the
    next time. One read transaction: the marks, the counts and the answers are of one
    state of the log while batches go on writing."""
    before = tracked.seq if tracked is not None else 0
    with store.transaction(serialised=False):
        marks = store.fetch_all(_MARKS_SQL, {"before": before})[0]
        seq, events_before, attributed_before, events, attributed, ledger = marks
        last = tracked
        if last is not None and (
            events_before != last.events or attributed_before != last.attributed
        ):
            last = None  # the log lost (or regained) events already counted: recount
        channels = dict(last.channels) if last is not None else {}
        hours = dict(last.hours) if last is not None else {}
        since = last.seq if last is not None else 0
        for kind, key, count in store.fetch_all(_TOTALS_SQL, {"since": since}):
            if kind == "c":
                channels[key] = channels.get(key, 0) + count
            else:
                hours[int(key)] = hours.get(int(key), 0) + count
        channel_prior = _shares(channels)
        hour_prior = _shares(_spread(hours))
        channel_drift = hour_drift = 0.0
        due: list[str] = []
        if last is not None:
            channel_drift = last.channel_drift + _drift(last.channel_prior, channel_prior)
            hour_drift = last.hour_drift + _drift(last.hour_prior, hour_prior)
            due = last.due(channel_drift, hour_drift)
            if len(due) > _EVERYONE_SHARE * len(last.index):
                last = None  # one pass over everyone is cheaper
        parameters: dict[str, Any] = {
            "channel_k": list(channel_prior),
            "channel_p": list(channel_prior.values()),
            "hour_k": list(hour_prior),
            "hour_p": list(hour_prior.values()),
        }
        if last is None:
            rows = store.fetch_all_yielding(EVERYONE_SQL, parameters)
        else:
            parameters |= {"due": due, "since": last.seq, "ledger": last.ledger}
            rows = store.fetch_all_yielding(DUE_SQL, parameters)
        found: dict[str, dict[str, Any]] = {}
        budgets: list[tuple[str, float, float]] = []
        for by_channel, by_hour, profile, channel, hour, time, channel_budget, hour_budget in rows:
            found[profile] = {
                engagement.BY_CHANNEL.name: orjson.loads(by_channel),
                engagement.BY_HOUR.name: orjson.loads(by_hour),
                "best_channel": channel,
                "best_hour_of_week": hour,
                "best_time": time,
            }
            budgets.append((profile, channel_budget or 0.0, hour_budget or 0.0))
    if last is None:  # everyone valued: the thresholds start over
        channel_drift = hour_drift = 0.0
        index: dict[str, int] = {}
        channel_at, hour_at = np.empty(0), np.empty(0)
    else:
        index = dict(last.index)
        channel_at, hour_at = last.channel_at.copy(), last.hour_at.copy()
    grown = len(index) + sum(1 for profile, _, _ in budgets if profile not in index)
    if grown > len(channel_at):
        channel_at = np.resize(channel_at, grown)
        hour_at = np.resize(hour_at, grown)
    for profile, channel_budget, hour_budget in budgets:
        at = index.setdefault(profile, len(index))
        # A budget at or below 0 (a tie, or a gap within the rounding): valued again at
        # any drift. Each threshold starts from the drift of the day they were valued.
        channel_at[at] = channel_drift + max(channel_budget, 0.0)
        hour_at[at] = hour_drift + max(hour_budget, 0.0)
    remembered = Tracked(
        seq=seq,
        events=events,
        attributed=attributed,
        ledger=ledger,
        channels=channels,
        hours=hours,
        channel_prior=channel_prior,
        hour_prior=hour_prior,
        channel_drift=channel_drift,
        hour_drift=hour_drift,
        index=index,
        channel_at=channel_at,
        hour_at=hour_at,
    )
    return Evaluated(found, remembered, everyone=last is None)
