"""Order histories as the buy-till-you-die models read them: per customer, the repeat
purchases, the time of the last one, the age, and the mean spend, cut at a date.

Pure: takes (customer, time, amount) rows, returns arrays. A customer's orders on one day
count as one purchase (their amounts added), as in the CDNOW data of Fader, Hardie & Lee:
several orders an hour apart are one shopping trip, not evidence of a faster buyer.

The calibration/holdout split: everything the model sees is before `calibration_end`;
the holdout counts what the same customers did from `calibration_end` to
`observation_end`. Ages and recencies are measured to the last day of calibration. A
customer whose first purchase is after `calibration_end` is not in the calibration set at
all (nothing of them could have been known).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Histories:
    """Per-customer statistics at the end of calibration, and the holdout's actuals.

    Times are in periods of `period_days` days. `x` counts repeat purchase days (the
    first purchase is not a repeat); `m_x` is the mean spend of the repeat purchases
    (0 when there is none), as the Gamma-Gamma model of Fader & Hardie wants it.
    """

    customers: list[str]
    x: Array
    t_x: Array
    big_t: Array
    m_x: Array
    holdout_purchases: Array
    holdout_spend: Array
    holdout_periods: float
    period_days: float


def summarise(
    orders: Iterable[tuple[str, datetime | date, float]],
    calibration_end: date,
    observation_end: date | None = None,
    period_days: float = 7.0,
) -> Histories:
    """Per-customer (x, t_x, T, m_x) from orders before `calibration_end`, and their
    purchases and spend from then to `observation_end` (exclusive; none when absent)."""
    days: dict[str, dict[date, float]] = {}
    for customer, moment, amount in orders:
        day = moment.date() if isinstance(moment, datetime) else moment
        if observation_end is not None and day >= observation_end:
            continue
        if observation_end is None and day >= calibration_end:
            continue
        spent = days.setdefault(customer, {})
        spent[day] = spent.get(day, 0.0) + (amount if np.isfinite(amount) else 0.0)
    # Ages run to the last day of calibration, as in the paper (T = 38.86 weeks for a
    # first purchase on 1 January 1997 with calibration to 30 September).
    last_day = calibration_end - timedelta(days=1)
    customers: list[str] = []
    rows: list[tuple[float, float, float, float, float, float]] = []
    for customer in sorted(days):
        by_day = sorted(days[customer].items())
        before = [(d, v) for d, v in by_day if d < calibration_end]
        if not before:
            continue
        after = [(d, v) for d, v in by_day if d >= calibration_end]
        first, last = before[0][0], before[-1][0]
        repeats = [v for _, v in before[1:]]
        customers.append(customer)
        rows.append((
            float(len(repeats)),
            (last - first).days / period_days,
            (last_day - first).days / period_days,
            float(np.mean(repeats)) if repeats else 0.0,
            float(len(after)),
            float(sum(v for _, v in after)),
        ))  # fmt: skip
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)
    holdout = (
        (observation_end - calibration_end).days / period_days
        if observation_end is not None
        else 0.0
    )
    return Histories(
        customers,
        table[:, 0],
        table[:, 1],
        table[:, 2],
        table[:, 3],
        table[:, 4],
        table[:, 5],
        holdout,
        period_days,
    )
