"""Admin API for segments: define, preview, list, members, history, why, overlap."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from starlette.responses import Response

from tessera.api.responses import StrictBody, json_response
from tessera.dependencies import CursorQuery, RuntimeDep, require_admin
from tessera.paging import Page
from tessera.results import Deleted
from tessera.segments import actions, service

router = APIRouter(prefix="/api/segments", dependencies=[Depends(require_admin)])


class SegmentBody(StrictBody):
    name: str = Field(examples=["fr-repeat-buyers"])
    query: str = Field(
        examples=['traits.country = "FR" and count(event "Order Completed" in last 90 days) >= 2']
    )
    exposed: bool = Field(
        default=False, description="Expose the segment's name to the decision API"
    )


class UpdateBody(StrictBody):
    query: str = Field(examples=['traits.country = "FR" and did "Order Completed"'])
    exposed: bool | None = Field(
        default=None, description="Expose to the decision API or stop (absent: unchanged)"
    )


class PreviewBody(StrictBody):
    query: str
    sample: int = 10


@router.get(
    "",
    response_model=list[actions.SegmentSummary],
    summary="Segments with their sizes and status (ok, or failed with the reason)",
)
def list_segments(runtime: RuntimeDep) -> Response:
    return json_response(actions.listing(runtime))


@router.post(
    "",
    status_code=201,
    response_model=actions.Segment,
    summary="Create a segment; it is filled from history at once",
)
def create_segment(body: SegmentBody, runtime: RuntimeDep) -> Response:
    created = actions.create(runtime, body.name, body.query, exposed=body.exposed)
    return json_response(created, status=201)


@router.post(
    "/preview",
    response_model=actions.Preview,
    summary="Size, sample and description of a query, without saving",
)
def preview(body: PreviewBody, runtime: RuntimeDep) -> Response:
    return json_response(actions.preview(runtime, body.query, sample=body.sample))


@router.get(
    "/overlap", response_model=list[actions.Overlap], summary="Pairwise overlap of current members"
)
def overlap(runtime: RuntimeDep) -> Response:
    return json_response(actions.overlap(runtime))


@router.get("/{name}", response_model=actions.Segment, summary="One segment")
def get_segment(name: str, runtime: RuntimeDep) -> Response:
    return json_response(actions.show(runtime, name))


@router.put(
    "/{name}",
    response_model=actions.Segment,
    summary="Change a segment's query; its members follow at once",
)
def update_segment(name: str, body: UpdateBody, runtime: RuntimeDep) -> Response:
    updated = actions.update(runtime, name, body.query, exposed=body.exposed)
    return json_response(updated)


@router.post(
    "/{name}/expose",
    response_model=actions.Segment,
    summary="Expose a segment to the decision API (its name answered to its members)",
)
def expose_segment(name: str, runtime: RuntimeDep) -> Response:
    exposed = actions.expose(runtime, name, True)
    return json_response(exposed)


@router.post(
    "/{name}/unexpose",
    response_model=actions.Segment,
    summary="Stop exposing a segment to the decision API",
)
def unexpose_segment(name: str, runtime: RuntimeDep) -> Response:
    hidden = actions.expose(runtime, name, False)
    return json_response(hidden)


@router.delete("/{name}", response_model=Deleted, summary="Delete a segment and its history")
def delete_segment(name: str, runtime: RuntimeDep) -> Response:
    return json_response(actions.delete(runtime, name))


@router.get(
    "/{name}/members",
    response_model=Page,
    summary="A page of current members, by profile id, with the total",
)
def members(
    name: str,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=service.MEMBERS_PAGE_MAX)] = 100,
    cursor: CursorQuery = None,
) -> Response:
    """Each member with its main identifiers (user id, e-mail, anonymous id, phone);
    follow `next_cursor` until it is null for every member."""
    return json_response(actions.members(runtime, name, limit, cursor))


@router.get(
    "/{name}/history",
    response_model=actions.History,
    summary="Size per day, from entries and exits",
)
def history(name: str, runtime: RuntimeDep) -> Response:
    return json_response(actions.history(runtime, name))


@router.get(
    "/{name}/why/{reference:path}",
    response_model=actions.Why,
    summary="Which conditions hold for a profile",
)
def why(name: str, reference: str, runtime: RuntimeDep) -> Response:
    return json_response(actions.why(runtime, name, reference))
