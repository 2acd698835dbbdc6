"""Personalisation over HTTP: the admin API (recommendations, offers, publishable keys,
decisions, the call-centre look-up) and the public decision API, /v1/personalize.

The decision API takes only a publishable key (`tpk_`, HTTP Basic user name like a write key,
or `?key=` for a plain GET): the admin router refuses it, and it refuses write keys and the
admin token. Browsers call it from other origins: it answers CORS (TESSERA_CORS_ORIGINS).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tessera.api.collect import cors_headers
from tessera.api.responses import StrictBody, error_response, json_response
from tessera.dependencies import RuntimeDep, require_admin
from tessera.errors import InvalidJson, InvalidRequest, TesseraError
from tessera.personalize import callcentre, decisions, exposure, keys, offers, serving
from tessera.personalize import recommendations as recs
from tessera.personalize.decisions import Decision, DecisionRequest
from tessera.personalize.strategies import Strategy
from tessera.results import Deleted
from tessera.runtime import Runtime
from tessera.settings import Settings

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])
MAX_DECISION_BODY = 16 * 1024


class KeyBody(StrictBody):
    source: str = Field(description="The source the key belongs to", examples=["web-shop"])


@router.post("/recommendations/train", response_model=recs.Trained,
             summary="Train the recommendation model now")  # fmt: skip
def train(runtime: RuntimeDep) -> Response:
    trained = runtime.personalizer.retrain()
    return json_response(trained)


@router.get("/recommendations", response_model=recs.ModelStatus,
            summary="The model and the most popular products")  # fmt: skip
def model_status(runtime: RuntimeDep) -> Response:
    return json_response(recs.status(runtime))


@router.get("/recommendations/{reference}", response_model=recs.Recommendations,
            summary="Recommendations for a person (TYPE:VALUE or a profile id)")  # fmt: skip
def recommend(
    reference: str, runtime: RuntimeDep, n: Annotated[int, Query(ge=1, le=50)] = 10
) -> Response:
    return json_response(recs.recommend(runtime, reference, n))


@router.get("/offers", response_model=list[offers.Offer], summary="List offers")
def list_offers(runtime: RuntimeDep) -> Response:
    return json_response(offers.list_all(runtime.store))


@router.post("/offers", status_code=201, response_model=offers.Offer, summary="Create an offer")
def create_offer(body: offers.OfferSpec, runtime: RuntimeDep) -> Response:
    created = offers.create(runtime, body)
    return json_response(created, status=201)


@router.get("/offers/{name}", response_model=offers.Offer, summary="One offer")
def show_offer(name: str, runtime: RuntimeDep) -> Response:
    return json_response(offers.get(runtime.store, name))


@router.delete("/offers/{name}", response_model=Deleted, summary="Delete an offer")
def delete_offer(name: str, runtime: RuntimeDep) -> Response:
    deleted = offers.delete(runtime, name)
    return json_response(deleted)


@router.get("/decisions", response_model=list[decisions.RecordedDecision],
            summary="The latest decisions the decision API recorded")  # fmt: skip
def recent_decisions(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> Response:
    runtime.personalizer.flush()
    return json_response(decisions.recent(runtime.store, limit))


@router.get("/decisions/lift", response_model=list[decisions.OfferLift],
            summary="Per offer: conversion of those shown it against those held out")  # fmt: skip
def offer_lift(
    runtime: RuntimeDep,
    offer: Annotated[str | None, Query(max_length=64)] = None,
    event: Annotated[str, Query(min_length=1, max_length=200)] = "Order Completed",
) -> Response:
    runtime.personalizer.flush()
    return json_response(decisions.lift(runtime.store, offer, event))


@router.get("/decisions/preview/{reference}", response_model=Decision,
            summary="The live decision for a person, not recorded")  # fmt: skip
def preview_decision(
    reference: str,
    runtime: RuntimeDep,
    channel: Annotated[str, Query(max_length=40)] = "web",
    strategy: Strategy | None = None,
) -> Response:
    return json_response(
        serving.preview(
            runtime, runtime.personalizer, reference, channel=channel, strategy=strategy
        )
    )


@router.get("/personalize/traits", response_model=exposure.ExposedTraits,
            summary="The traits a decision may answer: flagged, and from the setting")  # fmt: skip
def exposed_traits(runtime: RuntimeDep) -> Response:
    return json_response(exposure.listing(runtime))


@router.post("/personalize/traits/{name}/expose", response_model=exposure.ExposedTraits,
             summary="Expose a trait (traits.NAME, computed.NAME) to the decision API")  # fmt: skip
def expose_trait(name: str, runtime: RuntimeDep) -> Response:
    exposed = exposure.expose_trait(runtime, name, True)
    return json_response(exposed)


@router.post("/personalize/traits/{name}/unexpose", response_model=exposure.ExposedTraits,
             summary="Stop exposing a trait to the decision API")  # fmt: skip
def unexpose_trait(name: str, runtime: RuntimeDep) -> Response:
    hidden = exposure.expose_trait(runtime, name, False)
    return json_response(hidden)


@router.get("/personalize/keys", response_model=list[keys.PublishableKey],
            summary="Publishable keys of the decision API")  # fmt: skip
def list_keys(runtime: RuntimeDep) -> Response:
    return json_response(keys.list_all(runtime.store))


@router.post("/personalize/keys", status_code=201, response_model=keys.PublishableKeyCreated,
             summary="A publishable key for a source (shown once)")  # fmt: skip
def create_key(body: KeyBody, runtime: RuntimeDep) -> Response:
    created = keys.create(runtime, runtime.sources, body.source)
    return json_response(created, status=201)


@router.post("/personalize/keys/{key_id}/revoke", response_model=keys.PublishableKey,
             summary="Revoke a publishable key")  # fmt: skip
def revoke_key(key_id: str, runtime: RuntimeDep) -> Response:
    revoked = keys.revoke(runtime, key_id)
    return json_response(revoked)


@router.get("/callcentre", response_model=callcentre.CallerCard,
            summary="Who is calling: a phone number or e-mail in any format")  # fmt: skip
def call_centre(
    runtime: RuntimeDep, q: Annotated[str, Query(min_length=1, max_length=320)]
) -> Response:
    return json_response(serving.caller_card(runtime, runtime.personalizer, q))


# -- the public decision API ----------------------------------------------------------------


def personalize_routes() -> list[Route]:
    """GET, POST and OPTIONS /v1/personalize (not in the admin OpenAPI document)."""
    return [Route("/v1/personalize", _decide, methods=["GET", "POST", "OPTIONS"])]


async def _decide(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    runtime: Runtime = request.app.state.runtime
    headers = cors_headers(request, settings.cors_origins)
    if headers:
        headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    headers["Cache-Control"] = "no-store"
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=headers)
    try:
        key, asked = await _read(request)
        source_id = runtime.personalizer.authenticate(key)
        if runtime.pipeline.memory_loaded:  # from memory: microseconds, no SQL
            decision = runtime.personalizer.decide(asked, source_id=source_id)
        else:
            # Until the pipeline's memory is loaded (the first seconds after a start), a
            # decision reads the profile from the store. On the event loop, those queries
            # held every other request still: 0.2 to 1.1 s at 500 requests/s on the
            # 100k-profile benchmark (measured with a loop watchdog).
            decision = await run_in_threadpool(
                runtime.personalizer.decide, asked, source_id=source_id
            )
    except TesseraError as error:
        return error_response(error, headers)
    return json_response(decision, headers=headers)


async def _read(request: Request) -> tuple[str | None, DecisionRequest]:
    query = request.query_params
    data: dict[str, Any] = {}
    if request.method == "POST":
        body = await request.body()
        if len(body) > MAX_DECISION_BODY:
            raise InvalidRequest(f"a decision request is at most {MAX_DECISION_BODY} bytes")
        if body.strip():
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise InvalidJson(f"the body is not JSON: {e}") from None
            if not isinstance(parsed, dict):
                raise InvalidJson("the body must be a JSON object")
            data = parsed
    else:
        for name in ("anonymousId", "userId", "channel", "n", "strategy"):
            if name in query:
                data[name] = query[name]
        page = {name: query[name] for name in ("url", "path", "referrer", "category")
                if name in query}  # fmt: skip
        if page:
            data["page"] = page
    key = _basic_user(request.headers.get("authorization")) or query.get("key")
    if key is None and isinstance(data.get("key"), str):
        key = data["key"]
    try:
        return key, DecisionRequest.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in e.errors()
        )
        raise InvalidRequest(f"invalid decision request: {problems}") from None


def _basic_user(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None  # an admin token lands here and is refused
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None
