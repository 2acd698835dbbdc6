"""Predictive traits on a real store with planted structure: half the customers stop
buying at some point. The models fit, judge themselves on a later period, score everyone,
and a segment on `computed.churn_risk` holds the leavers. The features read nothing at or
after their cutoff."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tessera.predict import features, service, stored
from tessera.profiles import catalogue
from tessera.runtime import Runtime
from tessera.segments import service as segments
from tests.integration.helpers import send

START = datetime(2026, 1, 1)
DAYS = 240


def _shop(seed: int = 7) -> tuple[list[dict[str, object]], set[str]]:
    rng = random.Random(seed)
    messages: list[dict[str, object]] = []
    leavers: set[str] = set()
    for n in range(160):
        user = f"u{n}"
        gap = rng.uniform(6, 20)  # days between orders while active
        leaves = n % 2 == 0
        stop = rng.uniform(40, DAYS) if leaves else DAYS
        if leaves and stop < DAYS - 30:
            leavers.add(user)
        day = rng.uniform(0, 30)
        k = 0
        while day < DAYS:
            moment = START + timedelta(days=day)
            active = day < stop
            if active:
                messages.append({
                    "type": "track", "userId": user, "event": "Order Completed",
                    "messageId": f"o{n}-{k}", "timestamp": moment.isoformat() + "Z",
                    "properties": {"revenue": round(rng.uniform(10, 90), 2)},
                })  # fmt: skip
            if active or rng.random() < 0.2:
                messages.append({
                    "type": "track", "userId": user, "event": "Product Viewed",
                    "messageId": f"v{n}-{k}", "timestamp": (moment - timedelta(hours=1)).isoformat()
                    + "Z", "properties": {"category": rng.choice(["books", "garden"])},
                })  # fmt: skip
            day += rng.expovariate(1 / gap)
            k += 1
    return messages, leavers


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    from tessera.settings import Settings
    from tests.conftest import ADMIN_TOKEN

    settings = Settings(data_dir=tmp_path_factory.mktemp("predict") / "data",
                        admin_token=ADMIN_TOKEN)  # fmt: skip
    runtime = Runtime.open(settings)
    messages, leavers = _shop()
    send(runtime, messages)
    runtime.pipeline.process()
    runtime.leavers = leavers  # type: ignore[attr-defined]
    runtime.report = service.fit(runtime)  # type: ignore[attr-defined]
    yield runtime
    runtime.close()


def test_fit_scores_everyone_and_a_segment_holds_the_churn_risks(shop: Runtime) -> None:
    report: service.Predictions = shop.report  # type: ignore[attr-defined]
    by_name = {m.name: m for m in report.models}
    assert {m.status for m in report.models} == {"fitted"}, [m.reason for m in report.models]
    churn = by_name["churn_risk"].figures
    assert churn["auc"] is not None and churn["auc"] > 0.75
    assert by_name["clv"].holdout and by_name["clv"].parameters["r"] > 0
    assert by_name["purchase_propensity"].calibration
    assert set(report.traits) == {"expected_purchases", "p_alive", "predicted_clv",
                                  "churn_risk", "purchase_propensity"}  # fmt: skip

    names = catalogue.names(shop.store)
    segments.create(shop.store, "leaving", "computed.churn_risk > 0.7", names)
    members = segments.members(shop.store, "leaving", limit=500)
    users = {m["user_id"] for m in members.items}
    leavers: set[str] = shop.leavers  # type: ignore[attr-defined]
    assert users, "nobody is at risk"
    assert len(users & leavers) / len(users) > 0.8


def test_a_person_reads_their_scores_with_the_model_date_and_reasons(shop: Runtime) -> None:
    profile = shop.store.fetch_one(
        "SELECT profile_id FROM predicted_traits WHERE name = 'churn_risk' "
        "ORDER BY value DESC LIMIT 1"
    )
    assert profile is not None
    found = service.person(shop, profile[0])
    scores = {s.name: s for s in found.scores}
    assert scores["churn_risk"].value is not None and scores["churn_risk"].value > 0.5
    assert scores["churn_risk"].reasons and scores["churn_risk"].model_fitted_at
    assert scores["p_alive"].reasons[0].endswith("repeat purchase days")


def test_score_again_keeps_the_model_and_its_date(shop: Runtime) -> None:
    before = {n: f for n, f, _, _ in stored.models(shop.store)}
    again = service.score(shop)
    assert {m.name: m.fitted_at for m in again.models}.keys() == before.keys()
    assert again.scores > 0


def test_features_read_nothing_at_or_after_their_cutoff(shop: Runtime) -> None:
    cutoff = START + timedelta(days=120)
    before = features.read(shop.store, cutoff, ["web"], ["books", "garden"])
    later = [{"type": "track", "userId": "u1", "event": "Order Completed",
              "messageId": f"late-{k}", "properties": {"revenue": 1000},
              "timestamp": (cutoff + timedelta(minutes=k)).isoformat() + "Z"}
             for k in range(3)]  # fmt: skip
    send(shop, later)
    shop.pipeline.process()
    after = features.read(shop.store, cutoff, ["web"], ["books", "garden"])
    assert before.profiles == after.profiles
    assert np.array_equal(before.matrix, after.matrix)


def test_too_little_history_is_reported_not_raised(runtime: Runtime) -> None:
    send(runtime, [{"type": "track", "userId": "solo", "event": "Order Completed",
                    "messageId": "only", "properties": {"revenue": 5}}])  # fmt: skip
    runtime.pipeline.process()
    report = service.fit(runtime)
    assert {m.status for m in report.models} == {"not_fitted"}
    assert all(m.reason for m in report.models)


def test_serve_refits_on_its_schedule(tmp_path: Path) -> None:
    from tessera.settings import Settings
    from tests.conftest import ADMIN_TOKEN

    every = 0.5 / 3600  # half a second
    settings = Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN,
                        predict_refresh_hours=every, pipeline_interval_seconds=0.1)  # fmt: skip
    runtime = Runtime.open(settings)
    try:
        messages, _ = _shop()
        send(runtime, messages[:400])
        runtime.pipeline.start()
        deadline = time.monotonic() + 120
        while len(stored.models(runtime.store)) < 3:
            assert time.monotonic() < deadline, "the schedule never refitted"
            time.sleep(0.2)
        assert {name for name, *_ in stored.models(runtime.store)} == {
            "clv", "churn_risk", "purchase_propensity"
        }  # fmt: skip
    finally:
        runtime.close()


def test_a_fit_that_gives_a_value_that_is_not_a_number_is_recorded_not_fitted(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An optimiser at the edge of its range can answer NaN or infinity. Stored as JSON,
    that is a null where a number belongs: the report could not be read back (a 500 from
    `POST /api/predict/fit`, as CI met on the 40-person demo) and rescoring would divide by
    nothing. The model is recorded as not fitted, with which number failed."""
    send(runtime, [{"type": "track", "userId": "solo", "event": "Order Completed",
                    "messageId": "only", "properties": {"revenue": 5}}])  # fmt: skip
    runtime.pipeline.process()
    profile = runtime.store.fetch_one("SELECT profile_id FROM profiles")
    assert profile is not None

    def diverged(store: object, settings: object, end: datetime) -> service.Fitted:
        report = service._fitted("clv", end) | {
            "figures": {"customers": 1.0},
            "parameters": {"r": 1.0, "q": float("nan")},
            "holdout": [{"label": "0", "customers": 1, "predicted": float("inf"),
                         "actual": 0.0}],
        }  # fmt: skip
        numbers = {"r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0, "p": 1.0,
                   "q": float("nan"), "gamma": 1.0}  # fmt: skip
        return report, numbers, [(profile[0], "p_alive", 0.5, ["why"])]

    monkeypatch.setattr(service, "_fit_clv", diverged)
    report = service.fit(runtime)
    clv_model = {m.name: m for m in report.models}["clv"]
    assert clv_model.status == "not_fitted"
    assert clv_model.reason is not None and "parameters.q" in clv_model.reason
    assert stored.models(runtime.store)  # read back
    assert runtime.store.fetch_one(
        "SELECT count(*) FROM predicted_traits WHERE name = 'p_alive'"
    ) == (0,)
    service.score(runtime)  # nothing left to rescore with, and no error


def test_a_stored_report_with_a_null_number_reads_as_not_fitted(runtime: Runtime) -> None:
    """A store written before the check above may hold such a report: it reads as not
    fitted (fit again), never as an error, and scoring passes over its numbers."""
    end = datetime(2026, 1, 1)
    broken = service._fitted("clv", end) | {"parameters": {"q": None}}
    stored.save_model(runtime.store, "clv", end, broken, {"r": 1.0, "q": None})
    report = service.show(runtime)
    assert [(m.name, m.status) for m in report.models] == [("clv", "not_fitted")]
    assert report.models[0].reason and "fit again" in report.models[0].reason
    assert service.score(runtime).scores == 0


def test_a_fit_whose_report_cannot_be_stored_is_recorded_not_fitted(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value JSON cannot hold (here a set) fails inside the per-model guard, never as a
    500 while saving: recorded as not fitted with the error's type."""

    def unstorable(store: object, settings: object, end: datetime) -> service.Fitted:
        return service._fitted("clv", end) | {"drivers": {"a"}}, {"r": 1.0}, []

    monkeypatch.setattr(service, "_fit_clv", unstorable)
    report = service.fit(runtime)
    clv_model = {m.name: m for m in report.models}["clv"]
    assert clv_model.status == "not_fitted"
    assert clv_model.reason is not None and "TypeError" in clv_model.reason
