"""Churn and propensity models, pure: the time split, the stored model's scores, the
calibration table and a person's reasons."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.predict import features, propensity


@given(st.integers(1, 365), st.integers(0, 10**6))
def test_training_outcomes_end_where_the_judged_features_begin(window: int, minutes: int) -> None:
    end = datetime(2026, 1, 1) + timedelta(minutes=minutes)
    train, judged = features.cutoffs(end, window)
    assert train + timedelta(days=window) == judged  # training labels: [train, judged)
    assert judged + timedelta(days=window) == end  # judged labels: [judged, end)


def _data(rows: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(rows, 3))
    logits = 1.5 * matrix[:, 0] - 1.0 * matrix[:, 1] - 0.5
    outcome = rng.random(rows) < 1 / (1 + np.exp(-logits))
    return matrix, outcome


def test_a_fitted_model_scores_as_scikit_learn_does_and_finds_the_signal() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    matrix, outcome = _data()
    model = propensity.fit(matrix, outcome, ["a", "b", "noise"])
    scaler = StandardScaler().fit(matrix)
    reference = LogisticRegression(max_iter=2000).fit(scaler.transform(matrix), outcome)
    expected = reference.predict_proba(scaler.transform(matrix))[:, 1]
    assert np.allclose(model.score(matrix), expected, atol=1e-6)
    assert model.weights[0] > 1 and model.weights[1] < -0.5 and abs(model.weights[2]) < 0.2


def test_calibration_of_honest_probabilities_sits_on_the_diagonal() -> None:
    rng = np.random.default_rng(5)
    predicted = rng.random(50_000)
    observed = (rng.random(50_000) < predicted).astype(float)
    bins = propensity.calibration(predicted, observed)
    assert len(bins) == 10 and sum(b.count for b in bins) == 50_000
    assert all(abs(b.predicted - b.observed) < 0.02 for b in bins)


def test_reasons_name_what_raises_a_score_most_with_the_persons_value() -> None:
    matrix, outcome = _data()
    model = propensity.fit(matrix, outcome, ["a", "b", "noise"])
    person = np.array([[3.0, -2.0, 0.0]])
    found = propensity.reasons(model, person, person, ["signal a", "signal b", "noise"])[0]
    assert found[0].startswith("signal a = 3 (+") and found[1].startswith("signal b = -2 (+")


def test_too_few_examples_of_an_outcome_are_refused() -> None:
    matrix = np.zeros((50, 2))
    outcome = np.array([True] * 3 + [False] * 47)
    with pytest.raises(ValueError, match="at least 10"):
        propensity.fit(matrix, outcome, ["a", "b"])


def test_the_baseline_is_judged_in_the_same_direction_as_the_outcome() -> None:
    matrix, outcome = _data()
    model = propensity.fit(matrix, outcome, ["a", "b", "noise"])
    # Recency that tracks the outcome: the churn baseline (higher = more likely) wins it.
    recency = np.where(outcome, 50.0, 5.0)
    judged = propensity.evaluate(model, matrix, outcome, recency, recency_raises=True)
    assert judged.baseline_auc == 1.0 and 0.5 < judged.auc < 1.0
    flipped = propensity.evaluate(model, matrix, outcome, recency, recency_raises=False)
    assert flipped.baseline_auc == 0.0
