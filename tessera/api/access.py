"""Admin API for access: users, personal API tokens, the audit log, and a person's consent
(read and changed by an agent). Roles are checked by the router's dependency
(`dependencies.authorize_api`), like every admin route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from tessera.api.responses import StrictBody, json_response
from tessera.dependencies import CursorQuery, RuntimeDep, authorize_api, principal_of
from tessera.paging import Page
from tessera.privacy import audit, tokens, users
from tessera.profiles import consent_changes

router = APIRouter(prefix="/api", dependencies=[Depends(authorize_api)])


class NewUser(StrictBody):
    name: str = Field(examples=["jane"])
    role: str = Field(description="admin, marketer, analyst or agent")
    password: str = Field(description="At least 12 characters")


class RoleChange(StrictBody):
    role: str = Field(description="admin, marketer, analyst or agent")


class NewToken(StrictBody):
    user: str
    scopes: list[str] = Field(default_factory=lambda: ["*"], examples=[["segments:read"]])
    expires: str | None = Field(default="90d", description="90d, 12h, 2w, an ISO date, never")
    description: str | None = None


class ConsentChange(StrictBody):
    purposes: dict[str, bool] = Field(examples=[{"email": False}])
    reason: str = Field(examples=["asked on the phone to stop e-mails"])


@router.get("/users", response_model=list[users.User], summary="List users")
def list_users(runtime: RuntimeDep) -> Response:
    return json_response(users.listing(runtime.store))


@router.post("/users", response_model=users.User, status_code=201, summary="Create a user")
def create_user(body: NewUser, runtime: RuntimeDep) -> Response:
    return json_response(users.create(runtime.store, body.name, body.role, body.password), 201)


@router.put("/users/{name}/role", response_model=users.User, summary="Change a user's role")
def set_role(name: str, body: RoleChange, runtime: RuntimeDep) -> Response:
    return json_response(users.set_role(runtime.store, name, body.role))


@router.post("/users/{name}/disable", response_model=users.User, summary="Disable a user")
def disable_user(name: str, runtime: RuntimeDep) -> Response:
    """They cannot sign in, and their sessions and tokens stop working at once."""
    return json_response(users.set_enabled(runtime.store, name, False))


@router.post("/users/{name}/enable", response_model=users.User, summary="Enable a user again")
def enable_user(name: str, runtime: RuntimeDep) -> Response:
    return json_response(users.set_enabled(runtime.store, name, True))


@router.get("/tokens", response_model=list[tokens.Token], summary="List personal API tokens")
def list_tokens(runtime: RuntimeDep, user: str | None = None) -> Response:
    return json_response(tokens.listing(runtime.store, user))


@router.post(
    "/tokens", response_model=tokens.CreatedToken, status_code=201,
    summary="Create a personal API token (shown once)",
)  # fmt: skip
def create_token(body: NewToken, runtime: RuntimeDep) -> Response:
    created = tokens.create(runtime.store, body.user, body.scopes, body.expires, body.description)
    return json_response(created, 201)


@router.delete("/tokens/{token_id}", response_model=tokens.Token, summary="Revoke a token")
def revoke_token(token_id: str, runtime: RuntimeDep) -> Response:
    return json_response(tokens.revoke(runtime.store, token_id))


@router.get("/audit", response_model=Page, summary="The audit log: a page, newest first")
def audit_log(
    runtime: RuntimeDep,
    actor: str | None = None,
    action: Annotated[str | None, Query(description="A prefix, e.g. 'sign-in', 'POST'")] = None,
    target: Annotated[str | None, Query(description="A fragment of the target")] = None,
    since: Annotated[str | None, Query(description="ISO date or time")] = None,
    until: Annotated[str | None, Query(description="ISO date or time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: CursorQuery = None,
) -> Response:
    page = audit.listing(
        runtime.store, actor=actor, action=action, target=target,
        since=audit.parse_time(since, "since"), until=audit.parse_time(until, "until"),
        limit=limit, cursor=cursor,
    )  # fmt: skip
    return json_response(page)


@router.get("/audit/verify", response_model=audit.Verified, summary="Check the hash chain")
def audit_verify(runtime: RuntimeDep) -> Response:
    return json_response(audit.verify(runtime.store))


@router.get(
    "/audit/export", summary="The whole audit log as JSON lines, oldest first",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"}},
)  # fmt: skip
def audit_export(runtime: RuntimeDep) -> Response:
    return StreamingResponse(
        audit.export_lines(runtime.store), media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="tessera-audit.jsonl"'},
    )  # fmt: skip


@router.get(
    "/profiles/{reference:path}/consent", response_model=consent_changes.ConsentState,
    summary="A person's consent per purpose, and its history",
)  # fmt: skip
def profile_consent(reference: str, runtime: RuntimeDep) -> Response:
    return json_response(consent_changes.state(runtime.store, runtime.settings, reference))


@router.post(
    "/profiles/{reference:path}/consent", response_model=consent_changes.ConsentChanged,
    summary="Grant or refuse purposes for a person, saying why",
)  # fmt: skip
async def change_consent(
    reference: str, body: ConsentChange, request: Request, runtime: RuntimeDep
) -> Response:
    principal = principal_of(request)
    actor = principal.actor if principal else "admin-token"
    changed = await run_in_threadpool(
        consent_changes.change, runtime, reference, body.purposes, actor, body.reason
    )
    await run_in_threadpool(runtime.pipeline.process)
    return json_response(changed)
