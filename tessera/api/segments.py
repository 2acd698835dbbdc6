"""Admin API for segments: define, preview, list, members, history, why, overlap."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from tessera.dependencies import CursorQuery, RuntimeDep, require_admin
from tessera.segments import actions, service

router = APIRouter(prefix="/api/segments", dependencies=[Depends(require_admin)])


class SegmentBody(BaseModel):
    name: str = Field(examples=["fr-repeat-buyers"])
    query: str = Field(
        examples=['traits.country = "FR" and count(event "Order Completed" in last 90 days) >= 2']
    )


class UpdateBody(BaseModel):
    query: str = Field(examples=['traits.country = "FR" and did "Order Completed"'])


class PreviewBody(BaseModel):
    query: str
    sample: int = 10


@router.get("", summary="Segments with their sizes and status (ok, or failed with the reason)")
def list_segments(runtime: RuntimeDep) -> list[dict[str, Any]]:
    return actions.listing(runtime)


@router.post("", status_code=201, summary="Create a segment; it is filled from history at once")
def create_segment(body: SegmentBody, runtime: RuntimeDep) -> dict[str, Any]:
    return actions.create(runtime, body.name, body.query)


@router.post("/preview", summary="Size, sample and description of a query, without saving")
def preview(body: PreviewBody, runtime: RuntimeDep) -> dict[str, Any]:
    return actions.preview(runtime, body.query, sample=body.sample)


@router.get("/overlap", summary="Pairwise overlap of current members")
def overlap(runtime: RuntimeDep) -> list[dict[str, Any]]:
    return actions.overlap(runtime)


@router.get("/{name}", summary="One segment")
def get_segment(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    return actions.show(runtime, name)


@router.put("/{name}", summary="Change a segment's query; its members follow at once")
def update_segment(name: str, body: UpdateBody, runtime: RuntimeDep) -> dict[str, Any]:
    return actions.update(runtime, name, body.query)


@router.delete("/{name}", summary="Delete a segment and its history")
def delete_segment(name: str, runtime: RuntimeDep) -> dict[str, str]:
    return actions.delete(runtime, name)


@router.get("/{name}/members", summary="A page of current members, by profile id, with the total")
def members(
    name: str,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=service.MEMBERS_PAGE_MAX)] = 100,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    """Each member with its main identifiers (user id, e-mail, anonymous id, phone);
    follow `next_cursor` until it is null for every member."""
    return actions.members(runtime, name, limit, cursor).to_dict()


@router.get("/{name}/history", summary="Size per day, from entries and exits")
def history(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    return actions.history(runtime, name)


@router.get("/{name}/why/{reference:path}", summary="Which conditions hold for a profile")
def why(name: str, reference: str, runtime: RuntimeDep) -> dict[str, Any]:
    return actions.why(runtime, name, reference)
