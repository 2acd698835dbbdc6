"""Admin API for tracking plans: /api/plans. Each route calls one use case of
`tessera.plans.service` and answers its result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from starlette.responses import Response

from tessera.api.responses import StrictBody, json_response
from tessera.dependencies import RuntimeDep, require_admin
from tessera.plans import service
from tessera.results import Deleted

router = APIRouter(prefix="/api/plans", dependencies=[Depends(require_admin)])


class PlanBody(StrictBody):
    mode: str = Field(default="flag", description="allow, flag or block", examples=["flag"])
    plan: dict[str, Any] = Field(
        description="{events: {NAME: {properties: JSON Schema}}, identify: {traits: JSON "
        "Schema}, allow_unplanned: bool} (docs/plans.md)",
        examples=[{"events": {"Order Completed": {"properties": {
            "type": "object", "required": ["total"],
            "properties": {"total": {"type": "number"}}}}}}],
    )  # fmt: skip


@router.get("", response_model=list[service.Plan], summary="Every source's tracking plan")
def list_plans(runtime: RuntimeDep) -> Response:
    return json_response(service.list_plans(runtime.store))


@router.get("/{source}", response_model=service.Plan, summary="A source's tracking plan")
def show_plan(source: str, runtime: RuntimeDep) -> Response:
    return json_response(service.get_plan(runtime.store, source))


@router.put("/{source}", response_model=service.Plan, summary="Set (or replace) a source's plan")
def set_plan(source: str, body: PlanBody, runtime: RuntimeDep) -> Response:
    return json_response(service.set_plan(runtime.store, source, body.mode, body.plan))


@router.delete("/{source}", response_model=Deleted, summary="Remove a source's plan")
def delete_plan(source: str, runtime: RuntimeDep) -> Response:
    return json_response(service.delete_plan(runtime.store, source))


@router.get(
    "/{source}/violations",
    response_model=list[service.PlanViolation],
    summary="The latest violations of a source's plan, newest first",
)
def plan_violations(
    source: str, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    return json_response(service.violations(runtime.store, source, limit))


@router.post(
    "/{source}/infer",
    response_model=service.Plan,
    summary="Propose a plan from the source's recent events (not saved)",
)
def infer_plan(
    source: str, runtime: RuntimeDep, days: Annotated[int, Query(ge=1, le=3650)] = 7
) -> Response:
    return json_response(service.infer(runtime.store, source, days))
