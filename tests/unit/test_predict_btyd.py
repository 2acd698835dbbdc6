"""BG/NBD and Gamma-Gamma against the papers' published fits on the CDNOW sample, and the
calibration/holdout split of order histories."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.predict import btyd, history
from tessera.predict.clv import by_frequency

CDNOW = Path(__file__).parents[1] / "fixtures" / "cdnow" / "CDNOW_sample.txt"


def cdnow_orders() -> list[tuple[str, datetime, float]]:
    rows = []
    for line in CDNOW.read_text().splitlines():
        _, customer, day, _, amount = line.split()
        rows.append((customer, datetime.strptime(day, "%Y%m%d"), float(amount)))
    return rows


@pytest.fixture(scope="module")
def cdnow() -> history.Histories:
    return history.summarise(cdnow_orders(), date(1997, 10, 1), date(1998, 7, 1))


def test_cdnow_summary_matches_the_paper(cdnow: history.Histories) -> None:
    assert len(cdnow.customers) == 2357
    assert int(cdnow.x.sum()) == 2457  # repeat transactions in the 39 weeks
    assert int((cdnow.x > 0).sum()) == 946
    assert cdnow.big_t.max() == pytest.approx(38.86, abs=0.005)
    assert cdnow.holdout_periods == 39


def test_bgnbd_reproduces_fader_hardie_lee_2005(cdnow: history.Histories) -> None:
    fitted = btyd.fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.big_t)
    # Published to three decimals: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426.
    assert round(fitted.r, 3) == 0.243
    assert round(fitted.alpha, 3) == 4.414
    assert round(fitted.a, 3) == 0.793
    assert round(fitted.b, 3) == 2.426
    assert round(fitted.log_likelihood, 1) == -9582.4


def test_gamma_gamma_reproduces_fader_hardie_note(cdnow: history.Histories) -> None:
    fitted = btyd.fit_gamma_gamma(cdnow.x, cdnow.m_x)
    assert (round(fitted.p, 2), round(fitted.q, 2), round(fitted.gamma, 2)) == (6.25, 3.74, 15.44)


def test_holdout_forecast_is_close_per_frequency_group(cdnow: history.Histories) -> None:
    fitted = btyd.fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.big_t)
    predicted = fitted.expected_purchases(39, cdnow.x, cdnow.t_x, cdnow.big_t)
    groups = by_frequency(cdnow.x, predicted, cdnow.holdout_purchases)
    # The paper's figure 4: the forecast follows the actuals in each group (x = 0: 0.24 actual).
    zero = groups[0]
    assert zero.customers == 1411
    assert zero.predicted == pytest.approx(zero.actual, abs=0.05)
    assert sum(g.customers for g in groups) == 2357


def test_p_alive_is_one_without_repeat_and_falls_with_silence() -> None:
    model = btyd.BgNbd(0.243, 4.414, 0.793, 2.426, 0.0)
    x, big_t = np.array([0.0, 3.0, 3.0]), np.array([30.0, 30.0, 30.0])
    alive = model.p_alive(x, np.array([0.0, 29.0, 5.0]), big_t)
    assert alive[0] == 1.0
    assert alive[1] > alive[2]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcde"), st.integers(0, 400), st.floats(0, 500)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 399),
)
def test_split_never_lets_the_holdout_into_calibration(
    orders: list[tuple[str, int, float]], cut: int
) -> None:
    start = date(2025, 1, 1)
    rows = [(c, date.fromordinal(start.toordinal() + d), v) for c, d, v in orders]
    calibration_end = date.fromordinal(start.toordinal() + cut)
    end = date.fromordinal(start.toordinal() + 401)
    split = history.summarise(rows, calibration_end, end, period_days=1)
    alone = history.summarise(
        [r for r in rows if r[1] < calibration_end], calibration_end, end, period_days=1
    )
    # The calibration statistics are the same whatever happened after the cut.
    assert split.customers == alone.customers
    assert np.array_equal(split.x, alone.x) and np.array_equal(split.t_x, alone.t_x)
    assert np.array_equal(split.big_t, alone.big_t) and np.allclose(split.m_x, alone.m_x)
    assert np.all(split.t_x <= split.big_t)
    assert split.holdout_purchases.sum() == len(
        {(c, d) for c, d, _ in rows if d >= calibration_end and c in split.customers}
    )
