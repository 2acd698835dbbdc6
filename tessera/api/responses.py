"""JSON responses in the shapes clients rely on (ARCHITECTURE §4)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tessera.errors import Overloaded, TesseraError

SUCCESS_BODY = b'{"success":true}'


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
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
