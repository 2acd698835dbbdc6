"""Customer lifetime value from the event log: BG/NBD and Gamma-Gamma (`btyd.py`) fitted on
every live profile's `Order Completed` events (time, `revenue`), judged on a holdout.

The evaluation fits on the orders before `now − holdout` and compares, per number of repeat
purchases in calibration, the purchases expected in the holdout with those made (the
figure of Fader, Hardie & Lee 2005). The scores come from a second fit on the whole
history: expected purchases in the next `horizon` days, the probability of being active,
and CLV = expected purchases × expected spend per purchase (undiscounted, in the currency
of `revenue`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from tessera.predict import btyd, history
from tessera.predict.features import ORDER_EVENT
from tessera.store import Store

Array = NDArray[np.float64]
PERIOD_DAYS = 7.0  # weeks, the paper's unit: its parameters read the same here
#: frequency groups of the holdout figure: 0, 1, ..., GROUPS - 1 and "GROUPS+"
GROUPS = 7

_ORDERS = """
SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.timestamp,
       coalesce(CASE WHEN isfinite(TRY_CAST(json_extract_string(e.properties, '$.revenue')
                                            AS DOUBLE))
                     THEN TRY_CAST(json_extract_string(e.properties, '$.revenue') AS DOUBLE)
                END, 0) AS revenue
FROM events e JOIN event_profiles ep ON ep.seq = e.seq
LEFT JOIN profiles p ON p.profile_id = ep.profile_id
WHERE e.type = 'track' AND e.event = $order AND e.timestamp < $end
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class FrequencyGroup:
    """Customers with `label` repeat purchases in calibration: their mean purchases in
    the holdout, expected and made."""

    label: str
    customers: int
    predicted: float
    actual: float


@dataclass(frozen=True)
class ClvScores:
    customers: list[str]
    expected_purchases: Array
    p_alive: Array
    clv: Array
    x: Array
    t_x: Array
    big_t: Array


def orders(store: Store, end: datetime) -> list[tuple[str, datetime, float]]:
    """(profile, time, revenue) of every order before `end`, on live profiles."""
    rows = store.fetch_all(_ORDERS, {"order": ORDER_EVENT, "end": end.replace(tzinfo=None)})
    return [(str(r[0]), r[1], float(r[2])) for r in rows]


def by_frequency(
    x: Array, predicted: Array, actual: Array, groups: int = GROUPS
) -> list[FrequencyGroup]:
    """The paper's holdout figure as rows: per calibration frequency 0..groups−1 and
    `groups`+, the mean expected and actual holdout purchases (empty groups left out)."""
    found = []
    for value in range(groups + 1):
        inside = x >= value if value == groups else x == value
        if not inside.any():
            continue
        found.append(FrequencyGroup(
            f"{value}+" if value == groups else str(value),
            int(inside.sum()),
            round(float(predicted[inside].mean()), 4),
            round(float(actual[inside].mean()), 4),
        ))  # fmt: skip
    return found


def holdout_days(first: date, end: date, horizon_days: int) -> int:
    """The holdout: the horizon, but at most a third of the history (two thirds are left
    to calibrate on)."""
    span = (end - first).days
    return max(1, min(horizon_days, span // 3))


def evaluate(
    rows: list[tuple[str, datetime, float]], calibration_end: date, observation_end: date
) -> tuple[btyd.BgNbd, list[FrequencyGroup], history.Histories]:
    """Fit on the calibration period and compare with the holdout, per frequency group."""
    split = history.summarise(rows, calibration_end, observation_end, PERIOD_DAYS)
    model = btyd.fit_bgnbd(split.x, split.t_x, split.big_t)
    predicted = model.expected_purchases(split.holdout_periods, split.x, split.t_x, split.big_t)
    return model, by_frequency(split.x, predicted, split.holdout_purchases), split


def score(
    rows: list[tuple[str, datetime, float]], end: date, horizon_days: int
) -> tuple[btyd.BgNbd, btyd.GammaGamma | None, ClvScores]:
    """Fit on the whole history to `end` and score every customer over the horizon. The
    spend model is None when too few customers repeat (CLV is then not scored: NaN)."""
    whole = history.summarise(rows, end, None, PERIOD_DAYS)
    model = btyd.fit_bgnbd(whole.x, whole.t_x, whole.big_t)
    expected = model.expected_purchases(horizon_days / PERIOD_DAYS, whole.x, whole.t_x, whole.big_t)
    alive = model.p_alive(whole.x, whole.t_x, whole.big_t)
    try:
        spend_model: btyd.GammaGamma | None = btyd.fit_gamma_gamma(whole.x, whole.m_x)
    except ValueError:
        spend_model = None
    if spend_model is not None and spend_model.q > 1:
        spend = spend_model.expected_spend(whole.x, whole.m_x)
        value = expected * spend
    else:
        value = np.full(expected.shape, np.nan)
    return (
        model,
        spend_model,
        ClvScores(whole.customers, expected, alive, value, whole.x, whole.t_x, whole.big_t),
    )


def reasons(scores: ClvScores, i: int) -> list[str]:
    """Why a customer's CLV scores are what they are: the model's three inputs."""
    weeks = scores.big_t[i]
    silent = weeks - scores.t_x[i]
    return [
        f"{scores.x[i]:.0f} repeat purchase days",
        f"last purchase {silent:.1f} weeks ago",
        f"customer for {weeks:.1f} weeks",
    ]


def first_order_day(rows: list[tuple[str, datetime, float]]) -> date | None:
    """The day of the first order, None without any."""
    return min(r[1] for r in rows).date() if rows else None


def day_after(moment: datetime) -> date:
    return (moment + timedelta(days=1)).date()
