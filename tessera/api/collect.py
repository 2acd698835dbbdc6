"""The Segment-compatible collect API: /v1/batch, /v1/track, ... and the browser's /v1/t.

Plain Starlette endpoints, not FastAPI routes: this is the hot path, and FastAPI's
dependency machinery would cost more per request than validating the messages. They find
`app.state.collector` and `app.state.settings`, and no Runtime: a collector process, which
has no store, mounts them too.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tessera.api.responses import SUCCESS_BODY, error_response
from tessera.errors import BodyTooLarge, StoreUnavailable, TesseraError
from tessera.events.collect import Collector
from tessera.events.contract import MESSAGE_TYPES, SHORT_TYPES
from tessera.events.timestamps import now_micros
from tessera.settings import Settings

log = logging.getLogger(__name__)

_CORS_BASE = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, Content-Encoding",
    "Access-Control-Expose-Headers": "Retry-After",
    "Access-Control-Max-Age": "86400",
}


def cors_headers(request: Request, allowed: list[str]) -> dict[str, str]:
    """Echo an allowed Origin (credentials need a named origin, not '*')."""
    origin = request.headers.get("origin")
    if origin is None:
        return {}
    if "*" not in allowed and origin not in allowed:
        return {}
    return {
        **_CORS_BASE,
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(
            f"request body is {declared} bytes; the limit is {limit} (TESSERA_MAX_BODY_BYTES): "
            "send smaller batches"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"request body exceeds the limit of {limit} bytes (TESSERA_MAX_BODY_BYTES): "
                "send smaller batches"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _endpoint(message_type: str | None):  # type: ignore[no-untyped-def]
    async def collect(request: Request) -> Response:
        settings: Settings = request.app.state.settings
        collector: Collector = request.app.state.collector
        headers = cors_headers(request, settings.cors_origins)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=headers)
        received_at = now_micros()
        try:
            body = await _read_body(request, settings.max_body_bytes)
            submission = collector.submit(
                body,
                message_type=message_type,
                authorization=request.headers.get("authorization"),
                content_encoding=request.headers.get("content-encoding"),
                received_at=received_at,
            )
            await asyncio.wrap_future(submission.future)
            if submission.error is not None:
                raise submission.error
        except TesseraError as error:
            return error_response(error, headers)
        except Exception:  # never a bare 500: the client may retry, and the log stays whole
            log.exception("collect failed")
            return error_response(StoreUnavailable("the server failed; retry"), headers)
        return Response(
            SUCCESS_BODY, status_code=200, media_type="application/json", headers=headers
        )

    return collect


def collect_routes() -> list[Route]:
    methods = ["POST", "OPTIONS"]
    routes = [
        Route("/v1/batch", _endpoint(None), methods=methods),
        Route("/v1/b", _endpoint(None), methods=methods),
    ]
    for kind in MESSAGE_TYPES:
        routes.append(Route(f"/v1/{kind}", _endpoint(kind), methods=methods))
    for short, kind in SHORT_TYPES.items():
        routes.append(Route(f"/v1/{short}", _endpoint(kind), methods=methods))
    return routes
