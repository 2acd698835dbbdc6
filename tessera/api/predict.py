"""Admin API for the predictive traits: /api/predict. Each route calls one use case of
`tessera.predict.service` and answers its result."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from tessera.api.responses import json_response
from tessera.dependencies import RuntimeDep, require_admin
from tessera.predict import service

router = APIRouter(prefix="/api/predict", dependencies=[Depends(require_admin)])


@router.get(
    "", response_model=service.Predictions, summary="The predictive models' last fit and figures"
)
def show_models(runtime: RuntimeDep) -> Response:
    return json_response(service.show(runtime))


@router.post(
    "/fit",
    response_model=service.Predictions,
    summary="Fit the models, score everyone, refresh computed traits",
)
def fit_models(runtime: RuntimeDep) -> Response:
    """BG/NBD + Gamma-Gamma (lifetime value), churn risk and purchase propensity, each
    judged on held-out data beside a baseline; a model the history cannot support is
    reported as not fitted, with its reason, and the others go on."""
    return json_response(service.fit(runtime))


@router.post(
    "/score",
    response_model=service.Predictions,
    summary="Score everyone again with the models as last fitted",
)
def score_everyone(runtime: RuntimeDep) -> Response:
    return json_response(service.score(runtime))


@router.get(
    "/profiles/{profile_id}",
    response_model=service.PersonPredictions,
    summary="One profile's predictive traits with their reasons",
)
def profile_scores(profile_id: str, runtime: RuntimeDep) -> Response:
    return json_response(service.person(runtime, profile_id))
