"""Console pages for access: an agent's look-up, users, the audit log (with filters and
its export), and changing a person's consent from their profile."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from tessera.dependencies import RuntimeDep, principal_of
from tessera.errors import InvalidField, TesseraError
from tessera.privacy import audit, users
from tessera.privacy.roles import ROLES
from tessera.profiles import consent_changes
from tessera.web import session
from tessera.web.rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])


@router.get("/lookup")
def lookup_page(request: Request, identifier: str = "") -> Response:
    """One customer at a time, by an identifier typed in full (an agent sees no lists)."""
    if identifier.strip():
        return RedirectResponse(f"/profiles/{quote(identifier.strip(), safe=':')}", 303)
    return render(request, "lookup.html", {})


@router.post("/profiles/{reference:path}/consent")
def change_consent(
    request: Request,
    runtime: RuntimeDep,
    reference: str,
    purpose: Annotated[str, Form()] = "",
    choice: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    principal = principal_of(request)
    actor = principal.actor if principal else "admin-token"
    if choice not in ("grant", "refuse"):
        raise InvalidField(f"choice must be grant or refuse, got {choice!r}", field="choice")
    consent_changes.change(runtime, reference, {purpose: choice == "grant"}, actor, reason)
    runtime.pipeline.process()
    note = f"Consent for {purpose} {'granted' if choice == 'grant' else 'refused'}."
    return RedirectResponse(
        f"/profiles/{quote(reference, safe=':')}?{urlencode({'message': note})}", 303
    )


@router.get("/users")
def users_page(request: Request, runtime: RuntimeDep, message: str = "") -> Response:
    context = {"users": users.listing(runtime.store), "roles": ROLES, "message": message}
    return render(request, "users.html", context)


@router.post("/users")
def create_user(
    request: Request,
    runtime: RuntimeDep,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    try:
        users.create(runtime.store, name, role, password)
    except TesseraError as e:
        context = {"users": users.listing(runtime.store), "roles": ROLES, "error": e,
                   "form": {"name": name, "role": role}}  # fmt: skip
        return render(request, "users.html", context, status=e.status)
    return RedirectResponse(f"/users?{urlencode({'message': f'Created {name}.'})}", 303)


@router.post("/users/{name}/{action}")
def change_user(
    runtime: RuntimeDep, name: str, action: str, role: Annotated[str, Form()] = ""
) -> Response:
    if action == "role":
        users.set_role(runtime.store, name, role)
    elif action in ("disable", "enable"):
        users.set_enabled(runtime.store, name, action == "enable")
    else:
        raise InvalidField(f"unknown action {action!r}: role, disable or enable", field="action")
    return RedirectResponse(f"/users?{urlencode({'message': f'{name}: {action} done.'})}", 303)


@router.get("/audit")
def audit_page(
    request: Request,
    runtime: RuntimeDep,
    actor: str = "",
    action: str = "",
    target: str = "",
    since: str = "",
    until: str = "",
    cursor: str | None = None,
) -> Response:
    filters = {"actor": actor, "action": action, "target": target, "since": since,
               "until": until}  # fmt: skip
    page = audit.listing(
        runtime.store, actor=actor or None, action=action or None, target=target or None,
        since=audit.parse_time(since, "since"), until=audit.parse_time(until, "until"),
        cursor=cursor or None,
    )  # fmt: skip
    query = urlencode({k: v for k, v in filters.items() if v})
    context = {"page": page, "filters": filters, "query": query,
               "verified": audit.verify(runtime.store)}  # fmt: skip
    return render(request, "audit.html", context)


@router.get("/audit/export")
def audit_export(runtime: RuntimeDep) -> Response:
    return StreamingResponse(
        audit.export_lines(runtime.store), media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="tessera-audit.jsonl"'},
    )  # fmt: skip
