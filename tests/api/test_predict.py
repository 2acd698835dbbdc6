"""Predictive traits through a real `tessera serve`: fit, show, score and one profile's
scores over the admin API, the CLI through the running server, and a segment on a score."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_cli import tessera
from tests.conftest import LiveServer, basic_auth, start_server
from tests.integration.test_predict import _shop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("predict") / "data")
    key = server.create_source("web-shop")
    messages, _ = _shop()
    for start in range(0, len(messages), 2000):
        response = httpx.post(
            f"{server.url}/v1/batch", json={"batch": messages[start : start + 2000]},
            headers={"Authorization": basic_auth(key)}, timeout=60,
        )  # fmt: skip
        assert response.status_code == 200, response.text
    server.caught_up(timeout=60)
    yield server
    server.stop()


def test_models_are_fitted_shown_and_scored_through_the_api(shop: LiveServer) -> None:
    api = f"{shop.url}/api/predict"
    empty = httpx.get(api, headers=shop.admin).json()
    assert empty == {"models": [], "scores": 0, "traits": []}
    refused = httpx.post(f"{api}/score", headers=shop.admin)
    assert refused.status_code == 404 and "tessera predict fit" in refused.json()["message"]

    fitted = httpx.post(f"{api}/fit", headers=shop.admin, timeout=120)
    assert fitted.status_code == 200, fitted.text
    report = fitted.json()
    assert {m["name"]: m["status"] for m in report["models"]} == {
        "clv": "fitted", "churn_risk": "fitted", "purchase_propensity": "fitted"
    }  # fmt: skip
    churn = next(m for m in report["models"] if m["name"] == "churn_risk")
    assert churn["figures"]["auc"] > churn["figures"]["baseline_auc"] - 0.05
    assert httpx.get(api, headers=shop.admin).json() == report

    query = {"name": "at-risk", "query": "computed.churn_risk > 0.7"}
    created = httpx.post(f"{shop.url}/api/segments", headers=shop.admin, json=query)
    assert created.status_code == 201, created.text
    members = httpx.get(f"{shop.url}/api/segments/at-risk/members", headers=shop.admin).json()
    assert members["total"] > 0
    person = members["items"][0]["profile_id"]
    scores = httpx.get(f"{api}/profiles/{person}", headers=shop.admin).json()
    churn_score = next(s for s in scores["scores"] if s["name"] == "churn_risk")
    assert churn_score["value"] > 0.7 and churn_score["reasons"]
    assert httpx.get(f"{api}/profiles/prf_nobody", headers=shop.admin).status_code == 404
    # Any identifier finds the person, as /api/profiles does; an unreadable one is a 400.
    unreadable = httpx.get(f"{api}/profiles/nobody", headers=shop.admin)
    assert unreadable.status_code == 400 and unreadable.json()["field"], unreadable.text
    assert httpx.post(f"{api}/score", headers=shop.admin, timeout=120).status_code == 200
    assert httpx.get(api).status_code == 401


def test_the_cli_reads_the_models_through_the_server(shop: LiveServer) -> None:
    data = shop.data_dir
    if not httpx.get(f"{shop.url}/api/predict", headers=shop.admin).json()["models"]:
        httpx.post(f"{shop.url}/api/predict/fit", headers=shop.admin, timeout=120)
    table = tessera(data, "predict", "show").stdout
    for title in ("Lifetime value", "Churn risk", "Purchase propensity"):
        assert f"{title}" in table
    assert "Holdout purchases per repeat purchases" in table and "Calibration" in table
