"""Churn risk and purchase propensity: logistic regressions on the event-log features
(`features.py`), judged on a later period than the one they learnt from.

Logistic regression rather than gradient boosting: on a few thousand customers it loses
little discrimination, its probabilities are calibrated by construction (it minimises log
loss), and its score splits exactly into one contribution per feature, which is what a
person's "top reasons" show. The fitted model is kept as plain numbers (the scaler's
means and scales, the coefficients), so scoring needs no pickle and no scikit-learn
object in the store.

Held-out figures: ROC AUC, the Brier score and a ten-bin calibration table on the
evaluation cutoff, beside a recency-only baseline (days since the last order, the rule a
marketer would use without a model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
#: fewer examples of either outcome than this and a model is not fitted (nor trusted)
MIN_CLASS = 10
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class LinearModel:
    """A fitted logistic regression as numbers: p = σ(b + Σ w_j (x_j − μ_j) / s_j)."""

    names: list[str]
    means: list[float]
    scales: list[float]
    weights: list[float]
    intercept: float

    def contributions(self, matrix: Array) -> Array:
        """Each feature's share of each row's log-odds, relative to the average row."""
        standard = (matrix - np.asarray(self.means)) / np.asarray(self.scales)
        return np.asarray(standard * np.asarray(self.weights), dtype=np.float64)

    def score(self, matrix: Array) -> Array:
        if matrix.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        logits = self.intercept + self.contributions(matrix).sum(axis=1)
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


@dataclass(frozen=True)
class CalibrationBin:
    predicted: float
    observed: float
    count: int


@dataclass(frozen=True)
class Evaluation:
    """Held-out figures of a model and of the recency-only baseline."""

    auc: float
    baseline_auc: float
    brier: float
    baseline_brier: float
    positives: int
    count: int
    calibration: list[CalibrationBin]


def fit(matrix: Array, outcome: NDArray[np.bool_], names: list[str]) -> LinearModel:
    """A regularised logistic regression of `outcome` on the features.

    Raises:
        ValueError: with fewer than MIN_CLASS examples of either outcome.
    """
    # Imported here: scikit-learn takes seconds to import, and every CLI command and
    # server start imports this module (scoring needs none of it).
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    positives = int(outcome.sum())
    if min(positives, outcome.size - positives) < MIN_CLASS:
        raise ValueError(
            f"{positives} of {outcome.size} examples have the outcome: at least {MIN_CLASS} "
            "of each are needed"
        )
    scaler = StandardScaler().fit(matrix)
    scales = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    standard = (matrix - scaler.mean_) / scales
    model = LogisticRegression(C=1.0, max_iter=2000).fit(standard, outcome)
    return LinearModel(
        names,
        [float(v) for v in scaler.mean_],
        [float(v) for v in scales],
        [float(v) for v in model.coef_[0]],
        float(model.intercept_[0]),
    )


def evaluate(
    model: LinearModel,
    matrix: Array,
    outcome: NDArray[np.bool_],
    recency: Array,
    recency_raises: bool,
) -> Evaluation:
    """The model's held-out figures beside the baseline's. `recency` is days since the
    last order; `recency_raises` says whether a longer wait means a higher chance of the
    outcome (churn) or a lower one (a purchase). The baseline's probabilities (for its
    Brier score) are the outcome's rate per recency decile of the held-out set itself,
    which flatters the baseline, never the model."""
    from sklearn.metrics import brier_score_loss

    predicted = model.score(matrix)
    target = outcome.astype(np.float64)
    baseline = recency if recency_raises else -recency
    return Evaluation(
        auc=_auc(target, predicted),
        baseline_auc=_auc(target, baseline),
        brier=float(brier_score_loss(target, predicted)) if target.size else float("nan"),
        baseline_brier=_decile_brier(target, baseline),
        positives=int(target.sum()),
        count=int(target.size),
        calibration=calibration(predicted, target),
    )


def calibration(predicted: Array, target: Array) -> list[CalibrationBin]:
    """Mean predicted against observed rate, in ten equal-width bins of the prediction
    (empty bins left out): on the diagonal when the probabilities can be taken at face
    value."""
    bins: list[CalibrationBin] = []
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    for b in range(CALIBRATION_BINS):
        inside = which == b
        if inside.any():
            bins.append(CalibrationBin(
                round(float(predicted[inside].mean()), 4),
                round(float(target[inside].mean()), 4),
                int(inside.sum()),
            ))  # fmt: skip
    return bins


def reasons(
    model: LinearModel, matrix: Array, raw: Array, labels: list[str], top: int = 3
) -> list[list[str]]:
    """Per row, the features that raise its score the most above the average row's, in
    words with the person's own value: "orders in the last 30 days = 0 (+1.20)"."""
    if matrix.shape[0] == 0:
        return []
    contribution = model.contributions(matrix)
    order = np.argsort(-contribution, axis=1)[:, :top]
    found: list[list[str]] = []
    for i, columns in enumerate(order):
        found.append([
            f"{labels[j]} = {_shown(float(raw[i, j]), labels[j])} (+{contribution[i, j]:.2f})"
            for j in columns
            if contribution[i, j] > 0
        ])  # fmt: skip
    return found


def _shown(value: float, label: str) -> str:
    if label.startswith("share"):
        return f"{value:.0%}"
    return f"{value:,.0f}"


def _auc(target: Array, score: Array) -> float:
    from sklearn.metrics import roc_auc_score

    if target.size == 0 or target.min() == target.max():
        return float("nan")
    return float(roc_auc_score(target, score))


def _decile_brier(target: Array, score: Array) -> float:
    if target.size == 0:
        return float("nan")
    ranks = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    decile = ranks * 10 // max(target.size, 1)
    rate = np.zeros_like(target)
    for d in range(10):
        inside = decile == d
        if inside.any():
            rate[inside] = target[inside].mean()
    return float(np.mean((rate - target) ** 2))
