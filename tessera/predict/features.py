"""Features for churn and purchase propensity, read from the event log as it stood at a
cutoff: nothing at or after the cutoff is read, so a model trained on one cutoff and
judged on a later one never sees its own future (the time split of `propensity.py`).

Per live profile (through merges) seen before the cutoff: recency and frequency of
orders and of any activity, spend, trends (the last 30 days against the 60 before),
the channel mix, and the share of product views per category. Counts and money enter as
log(1 + v): a few heavy buyers should not dominate a linear model.

The SQL is a fixed template; the cutoff and the order event are bound parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tessera.store import Store

ORDER_EVENT = "Order Completed"
VIEW_EVENT = "Product Viewed"
#: categories and channels beyond these many (the most frequent) are left out
MAX_CATEGORIES = 8

_EVENTS = """
    SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.timestamp, e.type,
           e.event, e.channel, e.properties
    FROM events e JOIN event_profiles ep ON ep.seq = e.seq
    LEFT JOIN profiles p ON p.profile_id = ep.profile_id
    WHERE e.timestamp < $cutoff
"""

_BASE = f"""
WITH ev AS ({_EVENTS}),
orders AS (
    SELECT profile_id, timestamp,
           CASE WHEN isfinite(TRY_CAST(json_extract_string(properties, '$.revenue') AS DOUBLE))
                THEN TRY_CAST(json_extract_string(properties, '$.revenue') AS DOUBLE) END
               AS revenue
    FROM ev WHERE type = 'track' AND event = $order)
SELECT a.profile_id,
       date_diff('second', min(a.timestamp), $cutoff) / 86400.0 AS tenure_days,
       date_diff('second', max(a.timestamp), $cutoff) / 86400.0 AS days_since_seen,
       count(*) FILTER (WHERE a.timestamp >= $cutoff - INTERVAL 30 DAY) AS events_30d,
       count(*) FILTER (WHERE a.timestamp < $cutoff - INTERVAL 30 DAY
                          AND a.timestamp >= $cutoff - INTERVAL 90 DAY) AS events_prior_60d,
       any_value(o.orders) AS orders, any_value(o.orders_30d) AS orders_30d,
       any_value(o.orders_prior_60d) AS orders_prior_60d,
       any_value(o.revenue) AS revenue, any_value(o.days_since_order) AS days_since_order
FROM ev a LEFT JOIN (
    SELECT profile_id, count(*) AS orders,
           count(*) FILTER (WHERE timestamp >= $cutoff - INTERVAL 30 DAY) AS orders_30d,
           count(*) FILTER (WHERE timestamp < $cutoff - INTERVAL 30 DAY
                              AND timestamp >= $cutoff - INTERVAL 90 DAY) AS orders_prior_60d,
           coalesce(sum(revenue), 0) AS revenue,
           date_diff('second', max(timestamp), $cutoff) / 86400.0 AS days_since_order
    FROM orders GROUP BY profile_id) o ON o.profile_id = a.profile_id
GROUP BY a.profile_id
ORDER BY a.profile_id
"""

_CHANNELS = f"""
WITH ev AS ({_EVENTS})
SELECT profile_id, channel, count(*) FROM ev GROUP BY ALL
"""

_CATEGORIES = f"""
WITH ev AS ({_EVENTS})
SELECT profile_id, json_extract_string(properties, '$.category') AS category, count(*)
FROM ev
WHERE type = 'track' AND event = $view
  AND json_extract_string(properties, '$.category') IS NOT NULL
GROUP BY ALL
"""

_ORDERED_BETWEEN = """
SELECT DISTINCT coalesce(p.merged_into, ep.profile_id)
FROM events e JOIN event_profiles ep ON ep.seq = e.seq
LEFT JOIN profiles p ON p.profile_id = ep.profile_id
WHERE e.type = 'track' AND e.event = $order AND e.timestamp >= $start AND e.timestamp < $end
"""

#: the base features, in order, with the words a person's top reasons use
BASE_FEATURES: dict[str, str] = {
    "days_since_order": "days since the last order",
    "days_since_seen": "days since last seen",
    "tenure_days": "days since first seen",
    "orders": "orders",
    "orders_30d": "orders in the last 30 days",
    "orders_prior_60d": "orders in the 60 days before",
    "revenue": "total spend",
    "events_30d": "activity in the last 30 days",
    "events_prior_60d": "activity in the 60 days before",
}
_LOGGED = {"orders", "orders_30d", "orders_prior_60d", "revenue", "events_30d",
           "events_prior_60d"}  # fmt: skip


@dataclass(frozen=True)
class FeatureTable:
    """One row per profile seen before `cutoff`; `raw` keeps the untransformed values
    (for the reasons a person reads), `matrix` what the model reads."""

    cutoff: datetime
    profiles: list[str]
    names: list[str]
    labels: list[str]
    matrix: NDArray[np.float64]
    raw: NDArray[np.float64]
    customers: NDArray[np.bool_]


def read(
    store: Store,
    cutoff: datetime,
    channels: list[str] | None = None,
    categories: list[str] | None = None,
) -> FeatureTable:
    """The features of every profile seen before `cutoff`. The channel and category
    columns are the given ones (a model's own, when scoring), else the most frequent."""
    moment = cutoff.replace(tzinfo=None)
    params: dict[str, Any] = {"cutoff": moment, "order": ORDER_EVENT}
    base = store.fetch_all(_BASE, params)
    channel_rows = store.fetch_all(_CHANNELS, {"cutoff": moment})
    category_rows = store.fetch_all(_CATEGORIES, {"cutoff": moment, "view": VIEW_EVENT})
    return assemble(moment, base, channel_rows, category_rows, channels, categories)


def assemble(
    cutoff: datetime,
    base: list[tuple[Any, ...]],
    channel_rows: list[tuple[Any, ...]],
    category_rows: list[tuple[Any, ...]],
    channels: list[str] | None = None,
    categories: list[str] | None = None,
) -> FeatureTable:
    """The feature table from the three queries' rows (pure)."""
    profiles = [str(row[0]) for row in base]
    index = {profile: i for i, profile in enumerate(profiles)}
    channels = channels if channels is not None else _most_frequent(channel_rows)
    categories = categories if categories is not None else _most_frequent(category_rows)
    raw = np.zeros((len(profiles), len(BASE_FEATURES)), dtype=np.float64)
    customers = np.zeros(len(profiles), dtype=bool)
    for i, row in enumerate(base):
        (_, tenure, seen, events_30, events_prior, orders, orders_30, orders_prior,
         revenue, since_order) = row  # fmt: skip
        customers[i] = bool(orders)
        # Never ordered: as long ago as they have been known (the least recent it can be).
        since = since_order if since_order is not None else tenure
        raw[i] = [since, seen, tenure, orders or 0, orders_30 or 0, orders_prior or 0,
                  revenue or 0.0, events_30, events_prior]  # fmt: skip
    channel_share = _shares(channel_rows, index, channels)
    category_share = _shares(category_rows, index, categories)
    names = [*BASE_FEATURES, *(f"channel:{c}" for c in channels),
             *(f"category:{c}" for c in categories)]  # fmt: skip
    labels = [*BASE_FEATURES.values(), *(f"share of activity on {c}" for c in channels),
              *(f"share of views in {c}" for c in categories)]  # fmt: skip
    transformed = raw.copy()
    for j, name in enumerate(BASE_FEATURES):
        if name in _LOGGED:
            transformed[:, j] = np.log1p(np.maximum(transformed[:, j], 0.0))
    matrix = np.hstack([transformed, channel_share, category_share])
    return FeatureTable(
        cutoff, profiles, names, labels, matrix,
        np.hstack([raw, channel_share, category_share]), customers,
    )  # fmt: skip


def ordered_between(store: Store, start: datetime, end: datetime) -> set[str]:
    """The live profiles with an order from `start` (inclusive) to `end` (exclusive)."""
    params = {"order": ORDER_EVENT, "start": start.replace(tzinfo=None),
              "end": end.replace(tzinfo=None)}  # fmt: skip
    return {str(row[0]) for row in store.fetch_all(_ORDERED_BETWEEN, params)}


def cutoffs(end: datetime, window_days: int) -> tuple[datetime, datetime]:
    """The training cutoff and the evaluation cutoff: features before each, labels in the
    `window_days` after it. The training labels end where the evaluation's features
    start, so nothing the evaluation judges was seen in training."""
    window = timedelta(days=window_days)
    return end - 2 * window, end - window


def _most_frequent(rows: list[tuple[Any, ...]]) -> list[str]:
    totals: dict[str, int] = {}
    for _, key, count in rows:
        if key is not None:
            totals[str(key)] = totals.get(str(key), 0) + int(count)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [key for key, _ in ranked[:MAX_CATEGORIES]]


def _shares(
    rows: list[tuple[Any, ...]], index: dict[str, int], keys: list[str]
) -> NDArray[np.float64]:
    """Each profile's share of its counts per key (rows of profile, key, count)."""
    counts = np.zeros((len(index), len(keys)), dtype=np.float64)
    totals = np.zeros(len(index), dtype=np.float64)
    column = {key: j for j, key in enumerate(keys)}
    for profile, key, count in rows:
        i = index.get(str(profile))
        if i is None:
            continue
        totals[i] += count
        j = column.get(str(key))
        if j is not None:
            counts[i, j] += count
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals[:, None] > 0, counts / np.maximum(totals[:, None], 1), 0.0)
    return np.asarray(shares, dtype=np.float64)


def finite(value: float) -> float | None:
    """A float JSON can hold, or None."""
    return value if math.isfinite(value) else None
