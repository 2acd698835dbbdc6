"""The FastAPI dependencies both HTTP edges use (the admin API and the console), in a
neutral module so that neither edge imports the other.

Authorisation happens here, once: `authorize` checks the request's principal against the
roles table (`privacy/roles.py`) by the area its route belongs to. The admin API reaches it
through `authorize_api` (a bearer: the admin token or a personal API token), the console
through its session (`web/session.require_session`); every router of either edge declares
one of the two, so no handler checks a role itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from tessera.errors import Forbidden, TooManyFailures, Unauthorized
from tessera.privacy import audit, roles, tokens
from tessera.privacy.attempts import FailedAttempts
from tessera.privacy.keys import secrets_match
from tessera.runtime import Runtime

#: The actor name of the admin token (the bootstrap) in the audit log.
ADMIN_TOKEN_ACTOR = "admin-token"


# Both dependencies are async on purpose: they do no I/O, and a sync dependency costs
# a hop through the thread pool on every request (measured: ~2 ms of p50 under load).
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

CursorQuery = Annotated[
    str | None,
    Query(description="The next_cursor of the previous page; leave out for the first page"),
]


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (signed in, or through one of their tokens) or the admin
    token. `scopes` narrow a token's role; None is the role's whole reach."""

    actor: str
    role: str
    scopes: frozenset[str] | None = None

    @property
    def sees_identifiers(self) -> bool:
        return self.role in roles.SEES_IDENTIFIERS


ADMIN = Principal(ADMIN_TOKEN_ACTOR, "admin")


class Redirect(Exception):
    """Answered with a 303 to `location` (a console page the principal may not see, when
    there is one they may: an agent's home is the look-up)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def principal_of(request: Request) -> Principal | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


async def authorize(request: Request, principal: Principal) -> None:
    """The one check: may `principal` make this request? Raises Forbidden (recorded in
    the audit log) when not; records an agent's look-up of a profile."""
    request.state.principal = principal
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    area = roles.area_of(template)
    if not roles.allowed(principal.role, request.method, template, principal.scopes):
        if template == "/" and roles.allowed(principal.role, "GET", "/lookup"):
            raise Redirect("/lookup")
        await _record(request, principal, "denied", area=area)
        raise Forbidden(
            f"the {principal.role} role cannot {roles.needs(request.method, template)} "
            f"{area} ({roles.AREAS.get(area, area)}): {request.method} {request.url.path}"
            + (" with this token's scopes" if principal.scopes is not None else "")
        )
    viewed = (request.scope.get("path_params") or {}).get("reference")
    if viewed and area == "profile" and principal.role == "agent" and request.method == "GET":
        await _record(request, principal, "ok", action="profile.view")


async def _record(
    request: Request,
    principal: Principal,
    outcome: str,
    *,
    action: str | None = None,
    area: str | None = None,
) -> None:
    runtime: Runtime = request.app.state.runtime
    params = request.scope.get("path_params") or {}
    await run_in_threadpool(
        audit.record,
        runtime.store,
        principal.actor,
        action or f"{request.method} {getattr(request.scope.get('route'), 'path', '?')}",
        "/".join(str(v) for v in params.values()) or None,
        {"area": area} if area else None,
        role=principal.role,
        address=client_address(request),
        outcome=outcome,
    )


async def authorize_api(request: Request) -> None:
    """The admin API's dependency: the admin token or a personal API token as a bearer
    token, then `authorize`. Wrong tokens count towards the same per-address limit as the
    console's sign-in (`privacy/attempts.py`) and are recorded in the audit log."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    expected: str = request.app.state.admin_token_hash
    limit: FailedAttempts = request.app.state.failed_tokens
    client = client_address(request)
    if (wait := limit.retry_after(client)) is not None:
        raise TooManyFailures(
            f"too many wrong admin tokens from this address; retry in {wait} seconds",
            retry_after=wait,
        )
    principal: Principal | None = None
    if scheme.lower() == "bearer" and token:
        if secrets_match(token, expected):
            principal = ADMIN
        elif token.startswith(tokens.TOKEN_PREFIX):
            runtime: Runtime = request.app.state.runtime
            bearer = await run_in_threadpool(tokens.authenticate, runtime.store, token)
            if bearer is not None:
                principal = Principal(f"{bearer.user}", bearer.role, bearer.scopes)
    if principal is None:
        if token:
            limit.failed(client)
            runtime = request.app.state.runtime
            await run_in_threadpool(
                audit.record, runtime.store, "anonymous", "sign-in", None, {"via": "api"},
                address=client, outcome="failed",
            )  # fmt: skip
        raise Unauthorized(
            "the admin API needs 'Authorization: Bearer <token>': the admin token (in "
            "DATA_DIR/admin-token or TESSERA_ADMIN_TOKEN) or a personal API token "
            "(`tessera tokens create`)"
        )
    await authorize(request, principal)


#: The older name: every admin API router's dependency.
require_admin = authorize_api
