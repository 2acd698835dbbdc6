"""Admin API for data-subject requests: /api/privacy/access, erase, suppress and the
requests with their receipts. Each route calls one use case of `tessera.governance`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, Response

from tessera.api.responses import StrictBody, json_response
from tessera.dependencies import RuntimeDep, require_admin
from tessera.governance import access, erasure, report, requests, retention
from tessera.results import Deleted

router = APIRouter(prefix="/api/privacy", dependencies=[Depends(require_admin)])


class PolicyBody(StrictBody):
    scope: str = Field(description="events, identifiers or profiles", examples=["events"])
    days: int = Field(ge=1, le=365_000, description="how long to keep, in days")
    source: str | None = Field(default=None, description="events: only this source")
    event: str | None = Field(
        default=None, description="events: only this track event or message type (page...)"
    )
    identifier_type: str | None = Field(
        default=None, description="identifiers: profiles with only this identifier type"
    )


class SubjectBody(BaseModel):
    """Who the request is about. In the body, never the URL: an identifier in a URL ends
    up in access logs and browser histories."""

    identifier: str = Field(
        description="TYPE:VALUE, e.g. email:jane@example.com or user_id:42",
        examples=["email:jane@example.com"],
    )


@router.post(
    "/access",
    response_model=access.AccessReport,
    summary="Everything held about a person (a data-subject access request)",
)
def access_request(body: SubjectBody, runtime: RuntimeDep) -> Response:
    return json_response(access.access(runtime, body.identifier))


@router.post(
    "/access/html",
    response_class=HTMLResponse,
    summary="The access report as a readable HTML page, to send to the person",
)
def access_request_html(body: SubjectBody, runtime: RuntimeDep) -> Response:
    return HTMLResponse(report.render_html(access.access(runtime, body.identifier)))


@router.post(
    "/erase",
    response_model=requests.PrivacyRequest,
    summary="Erase a person everywhere, with a receipt per system (filing it again retries)",
)
def erase_request(body: SubjectBody, runtime: RuntimeDep) -> Response:
    return json_response(erasure.erase(runtime, body.identifier))


@router.post(
    "/suppress",
    response_model=requests.PrivacyRequest,
    summary="Drop every new event naming a person at ingest (keeps what is held)",
)
def suppress_request(body: SubjectBody, runtime: RuntimeDep) -> Response:
    return json_response(access.suppress(runtime, body.identifier))


@router.get(
    "/requests",
    response_model=list[requests.PrivacyRequest],
    summary="Data-subject requests, latest first, with their last attempt's receipts",
)
def list_requests(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    return json_response(requests.list_all(runtime.store, limit))


@router.get(
    "/requests/{request_id}",
    response_model=requests.PrivacyRequest,
    summary="One data-subject request and its receipts",
)
def show_request(request_id: str, runtime: RuntimeDep) -> Response:
    return json_response(requests.get(runtime.store, request_id))


@router.get(
    "/retention/policies",
    response_model=list[retention.Policy],
    summary="Retention policies",
)
def list_policies(runtime: RuntimeDep) -> Response:
    return json_response(retention.policies(runtime.store))


@router.put(
    "/retention/policies/{name}",
    response_model=retention.Policy,
    summary="Create or replace a retention policy",
)
def set_policy(name: str, body: PolicyBody, runtime: RuntimeDep) -> Response:
    policy = retention.set_policy(
        runtime.store, name, body.scope, body.days, source=body.source, event=body.event,
        identifier_type=body.identifier_type,
    )  # fmt: skip
    return json_response(policy)


@router.delete(
    "/retention/policies/{name}", response_model=Deleted, summary="Delete a retention policy"
)
def delete_policy(name: str, runtime: RuntimeDep) -> Response:
    return json_response(retention.delete_policy(runtime.store, name))


@router.post(
    "/retention/run",
    response_model=retention.RetentionRun,
    summary="Enforce the retention policies now (dry_run: only count what would go)",
)
def run_retention(runtime: RuntimeDep, dry_run: bool = False) -> Response:
    return json_response(retention.run(runtime, dry_run=dry_run))


@router.get(
    "/retention/runs",
    response_model=list[retention.RetentionRun],
    summary="Retention runs, latest first, with their counts",
)
def retention_runs(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> Response:
    return json_response(retention.runs(runtime.store, limit))
