"""Admin API for destinations: /api/destinations. Each route calls one use case of
`tessera.activation` and answers its result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from tessera.activation import dead_letters, deliveries, destinations
from tessera.api.responses import json_response
from tessera.dependencies import RuntimeDep, require_admin

router = APIRouter(prefix="/api/destinations", dependencies=[Depends(require_admin)])


class DestinationBody(BaseModel):
    name: str = Field(examples=["crm-webhook"])
    kind: str = Field(
        description="webhook, segment, files, google_customer_match or meta_custom_audiences",
        examples=["webhook"],
    )
    purpose: str = Field(
        default="analytics",
        description="analytics, personalisation, email or advertising: checked against consent",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The kind's options (docs/activation.md)",
        examples=[{"url": "https://hooks.example.com/tessera", "batch_size": 100}],
    )


class ReplayBody(BaseModel):
    dead_letters: bool = Field(default=False, description="send the dead letters again")
    since: datetime | None = Field(
        default=None, description="send again every event received since this time"
    )


@router.get("", response_model=list[destinations.Destination], summary="List destinations")
def list_destinations(runtime: RuntimeDep) -> Response:
    return json_response(destinations.list_all(runtime.store))


@router.post(
    "",
    status_code=201,
    response_model=destinations.Created,
    summary="Create a destination; a webhook's secret is shown once",
)
def create_destination(body: DestinationBody, runtime: RuntimeDep) -> Response:
    created = destinations.create(runtime.store, body.name, body.kind, body.purpose, body.options)
    return json_response(created, status=201)


@router.get("/{name}", response_model=destinations.Destination, summary="One destination")
def show_destination(name: str, runtime: RuntimeDep) -> Response:
    return json_response(destinations.get(runtime.store, name))


@router.delete(
    "/{name}",
    response_model=destinations.DestinationDeleted,
    summary="Delete a destination, its position and its dead letters",
)
def delete_destination(name: str, runtime: RuntimeDep) -> Response:
    return json_response(destinations.delete(runtime.store, name))


@router.post(
    "/{name}/disable",
    response_model=destinations.Destination,
    summary="Stop delivering (the position is kept)",
)
def disable_destination(name: str, runtime: RuntimeDep) -> Response:
    return json_response(destinations.set_enabled(runtime.store, name, False))


@router.post(
    "/{name}/enable",
    response_model=destinations.Destination,
    summary="Deliver again from where it stopped",
)
def enable_destination(name: str, runtime: RuntimeDep) -> Response:
    return json_response(destinations.set_enabled(runtime.store, name, True))


@router.post(
    "/{name}/rotate-secret",
    response_model=destinations.Created,
    summary="A new webhook signing secret, shown once",
)
def rotate_secret(name: str, runtime: RuntimeDep) -> Response:
    return json_response(destinations.rotate_secret(runtime.store, name))


@router.get(
    "/{name}/deliveries",
    response_model=deliveries.Report,
    summary="The delivery log: per minute, totals, last errors",
)
def delivery_log(
    name: str, runtime: RuntimeDep, minutes: Annotated[int, Query(ge=1, le=10_080)] = 60
) -> Response:
    return json_response(deliveries.report(runtime.store, name, minutes))


@router.get(
    "/{name}/dead-letters",
    response_model=list[dead_letters.DeadLetter],
    summary="Messages refused or not delivered in time",
)
def list_dead_letters(
    name: str, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    return json_response(dead_letters.list_for(runtime.store, name, limit))


@router.post(
    "/{name}/replay",
    response_model=dead_letters.Replayed,
    summary="Send the dead letters, or the events since a time, again",
)
def replay(name: str, body: ReplayBody, runtime: RuntimeDep) -> Response:
    return json_response(
        dead_letters.replay(runtime.store, name, dead_letters=body.dead_letters, since=body.since)
    )
