"""The predictive traits' use cases: fit the models, show their figures, score everyone,
and read one person's scores with their reasons. The API, the console and the CLI call
these; `tessera serve` calls `refit` on a schedule (settings.predict_refresh_hours).

Three models, each fitted on its own so one that cannot be fitted (too little history)
leaves the others fitted, with its reason recorded:

- `clv`: BG/NBD + Gamma-Gamma (`clv.py`) → expected_purchases, p_alive, predicted_clv;
- `churn_risk`: P(no order in the next window | a customer) (`propensity.py`);
- `purchase_propensity`: P(an order in the next window) for everyone seen.

Time: the models are fitted up to the end of the log (its last event, or now if that is
earlier), so a log that stopped flowing is not read as everyone having churned.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import Field, ValidationError

from tessera.context import Context
from tessera.errors import NotFound
from tessera.events import failures
from tessera.events.timestamps import iso_utc, utc_now
from tessera.identity.lookup import lookup
from tessera.predict import btyd, clv, features, history, propensity, stored
from tessera.results import Result
from tessera.settings import Settings
from tessera.store import Store

log = logging.getLogger(__name__)
_FITTING = threading.Lock()
CLV_TRAITS = ("expected_purchases", "p_alive", "predicted_clv")
CLASSIFIERS = ("churn_risk", "purchase_propensity")
_TITLES = {
    "clv": "Lifetime value (BG/NBD + Gamma-Gamma)",
    "churn_risk": "Churn risk (logistic regression)",
    "purchase_propensity": "Purchase propensity (logistic regression)",
}


class CalibrationPoint(Result):
    """Held-out customers whose predicted probability fell in one tenth of [0, 1]."""

    predicted: float
    observed: float
    count: int


class HoldoutGroup(Result):
    """Customers with `label` repeat purchases in calibration: mean holdout purchases."""

    label: str
    customers: int
    predicted: float
    actual: float


class Model(Result):
    """One model's last fit: its held-out figures beside the baseline, or why it was not
    fitted."""

    name: str
    title: str
    status: Literal["fitted", "not_fitted"]
    reason: str | None = None
    fitted_at: str | None = None
    #: the end of the history it was fitted to, and what it learnt and was judged on
    data_until: str | None = None
    figures: dict[str, float | None] = Field(default_factory=dict)
    parameters: dict[str, float] = Field(default_factory=dict)
    calibration: list[CalibrationPoint] = Field(default_factory=list)
    holdout: list[HoldoutGroup] = Field(default_factory=list)
    #: the strongest coefficients, in words (classifiers)
    drivers: list[str] = Field(default_factory=list)


class Predictions(Result):
    """Every model's last fit and how many scores are stored."""

    models: list[Model]
    scores: int
    traits: list[str]


class PersonScore(Result):
    name: str
    value: float | None
    reasons: list[str]
    model_fitted_at: str | None


class PersonPredictions(Result):
    """One profile's predictive traits, each with the date of its model and its reasons."""

    profile_id: str
    scores: list[PersonScore]


# -- the use cases ----------------------------------------------------------------------


def fit(context: Context) -> Predictions:
    """Fit every model on the history so far, score everyone, and refresh the computed
    traits so segments read the new scores at once."""
    refit(context.store, context.settings, utc_now())
    context.pipeline.refresh_computed_traits()
    return show(context)


def score(context: Context) -> Predictions:
    """Score everyone again with the models as last fitted (their features move with
    time: recency grows), then refresh the computed traits.

    Raises:
        NotFound: when no model was ever fitted (`tessera predict fit`).
    """
    if not stored.models(context.store):
        raise NotFound("no predictive model fitted yet: run `tessera predict fit` first")
    rescore(context.store, context.settings, utc_now())
    context.pipeline.refresh_computed_traits()
    return show(context)


def show(context: Context) -> Predictions:
    """Every model's last fit (the figures) and the number of stored scores."""
    return _report(context.store)


def person(context: Context, reference: str) -> PersonPredictions:
    """One person's scores with their reasons (an empty list before any fit); `reference`
    is a profile id or any identifier (`email:ann@example.com`), as `profiles show` takes.

    Raises:
        NotFound: when no profile has this id or identifier.
        InvalidField: when the identifier cannot be read.
    """
    live = lookup(
        context.store,
        reference,
        context.settings.default_region,
        context.pipeline.find_in_memory,
    )
    return PersonPredictions(
        profile_id=live,
        scores=[
            PersonScore(name=name, value=_finite(value), reasons=reasons,
                        model_fitted_at=iso_utc(fitted))
            for name, value, reasons, fitted in stored.of_profile(context.store, live)
        ],
    )  # fmt: skip


# -- fitting and scoring (also the schedule's) ------------------------------------------


def refit(store: Store, settings: Settings, now: datetime) -> None:
    """Fit every model and store its report, its numbers and its scores. One fit at a
    time in a process (the schedule and a user's request may meet)."""
    with _FITTING:
        _refit(store, settings, now)


def _refit(store: Store, settings: Settings, now: datetime) -> None:
    end = log_end(store, now)
    for name, step in (("clv", _fit_clv), ("churn_risk", _fit_churn),
                       ("purchase_propensity", _fit_propensity)):  # fmt: skip
        try:
            report, numbers, rows = step(store, settings, end)
            _require_finite(report, numbers)
            orjson.dumps([report, numbers])  # storable, or it fails here, inside the guard
        except ValueError as e:  # too little history: recorded, the others go on
            report, numbers, rows = _not_fitted(name, str(e), end), None, None
        except Exception as e:  # a numerical failure: recorded too, never a 500
            # Type and place only: an exception's message may quote personal data.
            failure = failures.describe(e)
            log.error("fitting %s failed (%s at %s)", name, failure.error_type, failure.location)
            reason = f"the fit failed ({failure.error_type} at {failure.location})"
            report, numbers, rows = _not_fitted(name, reason, end), None, None
        # A fit that failed records why and forgets the older numbers: scores from a
        # model the data no longer supports would mislead.
        stored.save_model(store, name, now, report, numbers)
        names = list(CLV_TRAITS) if name == "clv" else [name]
        stored.replace_scores(store, names, rows or [], dict.fromkeys(names, now), now)


def rescore(store: Store, settings: Settings, now: datetime) -> int:
    """Score everyone with the stored numbers of each fitted model; returns the count."""
    with _FITTING:
        return _rescore(store, settings, now)


def _rescore(store: Store, settings: Settings, now: datetime) -> int:
    end = log_end(store, now)
    count = 0
    for name, fitted_at, _, numbers in stored.models(store):
        if numbers is None or _first_unusable(numbers, "") is not None:
            continue  # not fitted, or stored before `_require_finite`: fit again
        rows = _score_clv(store, settings, end, numbers) if name == "clv" else (
            _score_classifier(store, end, name, numbers))  # fmt: skip
        names = list(CLV_TRAITS) if name == "clv" else [name]
        stored.replace_scores(store, names, rows, dict.fromkeys(names, fitted_at), now)
        count += len(rows)
    return count


def log_end(store: Store, now: datetime) -> datetime:
    """The end of the history: just after the last event, or now if that is earlier."""
    row = store.fetch_one("SELECT max(timestamp) FROM events")
    moment = now.replace(tzinfo=None)
    if row is None or row[0] is None:
        return moment
    last: datetime = row[0] + timedelta(seconds=1)
    return min(moment, last)


Rows = list[tuple[str, str, float | None, list[str]]]
Fitted = tuple[dict[str, Any], dict[str, Any] | None, Rows | None]


def _fit_clv(store: Store, settings: Settings, end: datetime) -> Fitted:
    rows = clv.orders(store, end)
    first = clv.first_order_day(rows)
    if first is None:
        raise ValueError("no `Order Completed` event yet")
    last_day = clv.day_after(end)
    holdout = clv.holdout_days(first, last_day, settings.predict_horizon_days)
    calibrated, groups, _ = clv.evaluate(rows, last_day - timedelta(days=holdout), last_day)
    purchases, spend, scores = clv.score(rows, last_day, settings.predict_horizon_days)
    predicted = sum(g.predicted * g.customers for g in groups)
    actual = sum(g.actual * g.customers for g in groups)
    parameters = {"r": purchases.r, "alpha": purchases.alpha, "a": purchases.a,
                  "b": purchases.b}  # fmt: skip
    if spend is not None:
        parameters |= {"p": spend.p, "q": spend.q, "gamma": spend.gamma}
    report = _fitted("clv", end) | {
        "figures": {
            "customers": float(len(scores.customers)),
            "repeat_customers": float(np.sum(scores.x > 0)),
            "holdout_days": float(holdout),
            "holdout_predicted": round(predicted, 1),
            "holdout_actual": round(actual, 1),
            "holdout_error": round((predicted - actual) / actual, 4) if actual else None,
            "calibration_log_likelihood": round(calibrated.log_likelihood, 2),
            "horizon_days": float(settings.predict_horizon_days),
        },
        "parameters": {k: round(v, 4) for k, v in parameters.items()},
        "holdout": [g.__dict__ for g in groups],
    }
    return report, parameters, _clv_rows(scores)


def _clv_rows(scores: clv.ClvScores) -> Rows:
    rows: Rows = []
    for i, customer in enumerate(scores.customers):
        why = clv.reasons(scores, i)
        rows.append((customer, "expected_purchases", round(float(scores.expected_purchases[i]), 4),
                     why))  # fmt: skip
        rows.append((customer, "p_alive", round(float(scores.p_alive[i]), 4), why))
        value = float(scores.clv[i])
        rows.append((customer, "predicted_clv", round(value, 2) if np.isfinite(value) else None,
                     why))  # fmt: skip
    return rows


def _score_clv(store: Store, settings: Settings, end: datetime, numbers: dict[str, Any]) -> Rows:
    whole = history.summarise(clv.orders(store, end), clv.day_after(end), None, clv.PERIOD_DAYS)
    model = btyd.BgNbd(numbers["r"], numbers["alpha"], numbers["a"], numbers["b"], 0.0)
    horizon = settings.predict_horizon_days / clv.PERIOD_DAYS
    expected = model.expected_purchases(horizon, whole.x, whole.t_x, whole.big_t)
    value = np.full(expected.shape, np.nan)
    if "p" in numbers and numbers["q"] > 1:
        spend = btyd.GammaGamma(numbers["p"], numbers["q"], numbers["gamma"], 0.0)
        value = expected * spend.expected_spend(whole.x, whole.m_x)
    return _clv_rows(clv.ClvScores(
        whole.customers, expected, model.p_alive(whole.x, whole.t_x, whole.big_t), value,
        whole.x, whole.t_x, whole.big_t,
    ))  # fmt: skip


def _fit_churn(store: Store, settings: Settings, end: datetime) -> Fitted:
    return _fit_classifier(store, settings, end, "churn_risk")


def _fit_propensity(store: Store, settings: Settings, end: datetime) -> Fitted:
    return _fit_classifier(store, settings, end, "purchase_propensity")


def _examples(
    store: Store,
    cutoff: datetime,
    window: timedelta,
    name: str,
    channels: list[str] | None = None,
    categories: list[str] | None = None,
) -> tuple[features.FeatureTable, np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, Any]]:
    """Features before `cutoff`, the outcome in the window after it, and which rows the
    model is about (customers for churn, everyone for propensity)."""
    table = features.read(store, cutoff, channels, categories)
    bought = features.ordered_between(store, cutoff, cutoff + window)
    ordered = np.array([p in bought for p in table.profiles], dtype=bool)
    rows = table.customers if name == "churn_risk" else np.ones(len(table.profiles), bool)
    outcome = ~ordered if name == "churn_risk" else ordered
    return table, outcome[rows], rows


def _fit_classifier(store: Store, settings: Settings, end: datetime, name: str) -> Fitted:
    window = timedelta(days=settings.predict_window_days)
    train_cut, test_cut = features.cutoffs(end, settings.predict_window_days)
    train, train_y, train_rows = _examples(store, train_cut, window, name)
    if not train.profiles:
        raise ValueError(f"no profile seen before the training cutoff {iso_utc(train_cut)}")
    channels, categories = _columns(train)
    model = propensity.fit(train.matrix[train_rows], train_y, train.names)
    test, test_y, test_rows = _examples(store, test_cut, window, name, channels, categories)
    recency = test.raw[test_rows, list(features.BASE_FEATURES).index("days_since_order")]
    judged = propensity.evaluate(model, test.matrix[test_rows], test_y, recency,
                                 recency_raises=name == "churn_risk")  # fmt: skip
    # The model that scores: the same recipe on the latest complete window.
    latest = propensity.fit(test.matrix[test_rows], test_y, test.names)
    drivers = sorted(zip(latest.weights, test.labels, strict=True), key=lambda w: -abs(w[0]))
    report = _fitted(name, end) | {
        "figures": {
            "auc": _round(judged.auc), "baseline_auc": _round(judged.baseline_auc),
            "brier": _round(judged.brier), "baseline_brier": _round(judged.baseline_brier),
            "trained_on": float(int(train_rows.sum())), "judged_on": float(judged.count),
            "outcome_rate": _round(judged.positives / judged.count) if judged.count else None,
            "window_days": float(settings.predict_window_days),
        },
        "calibration": [b.__dict__ for b in judged.calibration],
        "drivers": [f"{label} ({'+' if w > 0 else '−'}{abs(w):.2f})"
                    for w, label in drivers[:5]],
    }  # fmt: skip
    numbers = {**latest.__dict__, "channels": channels, "categories": categories,
               "labels": test.labels}  # fmt: skip
    return report, numbers, _score_classifier(store, end, name, numbers)


def _score_classifier(store: Store, end: datetime, name: str, numbers: dict[str, Any]) -> Rows:
    model = propensity.LinearModel(
        numbers["names"], numbers["means"], numbers["scales"], numbers["weights"],
        numbers["intercept"],
    )  # fmt: skip
    table = features.read(store, end, numbers["channels"], numbers["categories"])
    rows = table.customers if name == "churn_risk" else np.ones(len(table.profiles), bool)
    matrix, raw = table.matrix[rows], table.raw[rows]
    profiles = [p for p, keep in zip(table.profiles, rows, strict=True) if keep]
    values = model.score(matrix)
    why = propensity.reasons(model, matrix, raw, numbers["labels"])
    return [(p, name, round(float(v), 4), w)
            for p, v, w in zip(profiles, values, why, strict=True)]  # fmt: skip


def _columns(table: features.FeatureTable) -> tuple[list[str], list[str]]:
    channels = [n.split(":", 1)[1] for n in table.names if n.startswith("channel:")]
    categories = [n.split(":", 1)[1] for n in table.names if n.startswith("category:")]
    return channels, categories


def _fitted(name: str, end: datetime) -> dict[str, Any]:
    return {"name": name, "title": _TITLES[name], "status": "fitted",
            "data_until": iso_utc(end)}  # fmt: skip


def _not_fitted(name: str, reason: str, end: datetime) -> dict[str, Any]:
    return {"name": name, "title": _TITLES[name], "status": "not_fitted",
            "reason": reason, "data_until": iso_utc(end)}  # fmt: skip


def _report(store: Store) -> Predictions:
    found = []
    for name, fitted_at, report, _ in stored.models(store):
        try:
            found.append(Model.model_validate({**report, "fitted_at": iso_utc(fitted_at)}))
        except ValidationError:  # stored before `_require_finite` checked it
            found.append(Model(
                name=name, title=_TITLES[name], status="not_fitted",
                reason="its stored report holds a number that is not one: fit again",
                fitted_at=iso_utc(fitted_at), data_until=report.get("data_until"),
            ))  # fmt: skip
    row = store.fetch_one("SELECT count(*) FROM predicted_traits")
    names = [m.name for m in found]
    traits = [t for t in (*CLV_TRAITS, *CLASSIFIERS)
              if ("clv" if t in CLV_TRAITS else t) in names]  # fmt: skip
    return Predictions(models=found, scores=int(row[0]) if row else 0, traits=traits)


def _require_finite(report: dict[str, Any], numbers: dict[str, Any] | None) -> None:
    """An optimiser at the edge of its range may answer NaN or infinity. JSON stores
    those as null, where a number belongs: the report would not read back and scoring
    would compute with nothing. Such a fit is refused like too little history.

    Raises:
        ValueError: naming the first such number (`parameters.q`).
    """
    for prefix, value in (("", {k: v for k, v in report.items() if k != "figures"}),
                          ("model.", numbers or {})):  # fmt: skip
        where = _first_unusable(value, prefix)
        if where is not None:
            raise ValueError(f"the fit gave a value that is not a number ({where}): "
                             "the data does not support this model yet")  # fmt: skip


def _first_unusable(value: Any, path: str) -> str | None:
    """The path of the first NaN, infinity or null number in `value` (dicts and lists),
    or None. A report's `figures` may hold None (a figure that does not apply), so the
    caller leaves them out."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return path.rstrip(".") or "value"
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())  # fmt: skip
    for key, item in items:
        found = _first_unusable(item, f"{path}{key}.")
        if found is not None:
            return found
    return None


def _round(value: float) -> float | None:
    return round(value, 4) if np.isfinite(value) else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and np.isfinite(value) else None
