"""JSON responses in the shapes clients rely on (ARCHITECTURE §4)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from tessera.errors import Overloaded, TesseraError
from tessera.results import wire

SUCCESS_BODY = b'{"success":true}'


class StrictBody(BaseModel):
    """An admin API request body, read strictly: `true` or `"1"` where a number belongs is
    a 400 naming the field, not a silent 1 that hides a client's bug (a whole number is
    still a valid float)."""

    model_config = ConfigDict(strict=True)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """`body` as JSON: plain values, a use case's `Result`, or lists and dicts of them."""
    return Response(
        wire(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(error: TesseraError, headers: dict[str, str] | None = None) -> Response:
    """`{"success": false, "code", "message"}` with the error's status; 429 gets Retry-After."""
    extra = dict(headers or {})
    if isinstance(error, Overloaded):
        extra["Retry-After"] = str(error.retry_after)
    return json_response(error.to_dict(), error.status, extra)


_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no route: 404, wrong method: 405) in the same shape as
    every other error, instead of `{"detail": ...}`, which clients cannot read."""
    assert isinstance(error, HTTPException)
    where = f"{request.method} {request.url.path}"
    headers = dict(error.headers or {})
    if error.status_code == 404:
        message = f"no such path: {where} (the admin API's paths are listed at /docs)"
    elif error.status_code == 405:
        if documented := _documented_methods(request):
            headers = {key: value for key, value in headers.items() if key.lower() != "allow"}
            headers["Allow"] = ", ".join(documented)
        allowed = next((v for k, v in headers.items() if k.lower() == "allow"), "none")
        message = f"{where}: method not allowed here (allowed: {allowed})"
    else:
        message = f"{where}: {error.detail}"
    body = {
        "success": False,
        "code": _HTTP_CODES.get(error.status_code, "http_error"),
        "message": message,
    }
    return json_response(body, error.status_code, headers)


def _documented_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for this path: Starlette's 405 names only
    the methods of the first route that matched it (GET of /api/sources, not its POST)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern, _, _ = compile_path(template)
        if pattern.match(request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)
