"""The console's predictive models page: each model's held-out figures beside its
baseline, the calibration plot and the holdout comparison (Chart.js), and buttons to fit
or score again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from tessera.dependencies import RuntimeDep
from tessera.predict import service
from tessera.web import session
from tessera.web.rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])


@router.get("/predict")
def predict_page(request: Request, runtime: RuntimeDep) -> Response:
    report = service.show(runtime)
    shown = [{"model": m, "chart": _chart(m)} for m in report.models]
    return render(request, "predict.html", {"report": report, "models": shown})


@router.post("/predict/fit")
def fit_models(runtime: RuntimeDep) -> Response:
    service.fit(runtime)
    return RedirectResponse("/predict", status_code=303)


@router.post("/predict/score")
def score_everyone(runtime: RuntimeDep) -> Response:
    service.score(runtime)
    return RedirectResponse("/predict", status_code=303)


def _chart(model: service.Model) -> dict[str, Any] | None:
    """Calibration (a classifier) or the holdout per frequency group (lifetime value)."""
    if model.calibration:
        return {
            "labels": [f"{b.predicted:.2f}" for b in model.calibration],
            "datasets": [
                {"label": "observed rate", "data": [b.observed for b in model.calibration]},
                {"label": "predicted (perfect calibration)",
                 "data": [b.predicted for b in model.calibration]},
            ],
        }  # fmt: skip
    if model.holdout:
        return {
            "labels": [g.label for g in model.holdout],
            "datasets": [
                {"label": "expected purchases", "data": [g.predicted for g in model.holdout]},
                {"label": "actual purchases", "data": [g.actual for g in model.holdout]},
            ],
        }
    return None
