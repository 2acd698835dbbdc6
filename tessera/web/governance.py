"""The console's privacy page: file a data-subject request (access, erasure,
suppression) for one identifier, see every request with its state, and each request's
receipts. An access request answers the readable report the person is sent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tessera.dependencies import RuntimeDep
from tessera.errors import TesseraError
from tessera.governance import access, erasure, report, requests, retention
from tessera.web import session
from tessera.web.rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])


@router.get("/privacy")
def privacy_page(request: Request, runtime: RuntimeDep) -> Response:
    return render(request, "privacy.html", _context(runtime))


@router.post("/privacy/retention")
def run_retention(
    request: Request, runtime: RuntimeDep, dry_run: Annotated[bool, Form()] = True
) -> Response:
    done = retention.run(runtime, dry_run=dry_run)
    return render(request, "privacy.html", {**_context(runtime), "retention_run": done})


def _context(runtime: RuntimeDep) -> dict[str, Any]:
    return {
        "requests": requests.list_all(runtime.store, 50),
        "policies": retention.policies(runtime.store),
        "runs": retention.runs(runtime.store, 10),
    }


@router.post("/privacy")
def file_request(
    request: Request,
    runtime: RuntimeDep,
    identifier: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "access",
) -> Response:
    try:
        if kind == "erase":
            filed = erasure.erase(runtime, identifier)
        elif kind == "suppress":
            filed = access.suppress(runtime, identifier)
        else:
            return HTMLResponse(report.render_html(access.access(runtime, identifier)))
    except TesseraError as e:
        context = {**_context(runtime), "error": e, "identifier": identifier, "kind": kind}
        return render(request, "privacy.html", context, status=400)
    return RedirectResponse(f"/privacy/requests/{filed.id}", status_code=303)


@router.get("/privacy/requests/{request_id}")
def request_page(request: Request, runtime: RuntimeDep, request_id: str) -> Response:
    filed = requests.get(runtime.store, request_id)
    return render(request, "privacy_request.html", {"filed": filed})
