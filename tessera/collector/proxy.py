"""The collectors' way to the core: every path they do not serve themselves (the admin API,
the console, /docs) is passed to the core process on its private socket.

Plain ASGI over one httpx client: bodies stream both ways (an upload or an export is never
held whole), the status, every header (each Set-Cookie, Location of a 303) and the body
come back as the core sent them, and redirects are never followed here. The client's
address and scheme go along as X-Forwarded-For/-Proto, which the core trusts only because
nothing but the collectors can reach its socket (0600 in a 0700 directory).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from tessera.api.responses import error_response
from tessera.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never passed on.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto"})
#: how long the proxy keeps an idle connection to the core, and how long the core does
KEEP_ALIVE_S = 15.0
CORE_KEEP_ALIVE_S = 75


class CoreProxy:
    """An ASGI app answering each request with the core's answer to it."""

    def __init__(self, core_url: str, socket_path: str | None) -> None:
        """`core_url` is where the core listens (http://core on a unix socket at
        `socket_path`, or a loopback URL when `socket_path` is None)."""
        transport = httpx.AsyncHTTPTransport(uds=socket_path) if socket_path else None
        self._client = httpx.AsyncClient(
            base_url=core_url,
            transport=transport,
            # A client's cookies are its own: httpx keeps the cookies of every answer and
            # sends them with the next request, which here would sign in every visitor
            # with the session of the last person who signed in. This jar takes none.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            follow_redirects=False,
            # An export or a rebuild may take minutes; connecting must not.
            timeout=httpx.Timeout(600.0, connect=5.0),
            # An idle connection is dropped here well before the core would close it
            # (CORE_KEEP_ALIVE_S): a request sent just as the core closed its end would
            # fail with "server disconnected" (seen as 503s in the console's tests).
            limits=httpx.Limits(
                max_connections=256, max_keepalive_connections=32, keepalive_expiry=KEEP_ALIVE_S
            ),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan and websockets: nothing of ours uses them
            return
        request = Request(scope, receive)
        outgoing = self._client.build_request(
            request.method,
            httpx.URL(
                path=scope.get("raw_path", b"").decode("latin-1") or request.url.path,
                query=scope.get("query_string", b""),
            ),
            headers=_request_headers(scope, request),
            content=_body(request) if _has_body(scope) else None,
        )
        try:
            answer = await self._client.send(outgoing, stream=True)
        except httpx.HTTPError as e:
            log.warning("the core process did not answer %s: %s", request.url.path, e)
            unavailable = StoreUnavailable("the core process is not answering; retry shortly")
            await error_response(unavailable)(scope, receive, send)
            return
        response = StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
        )
        response.raw_headers = [
            (name.lower(), value)
            for name, value in answer.headers.raw
            if name.lower() not in _HOP_BY_HOP
        ]
        await response(scope, receive, send)

    async def aclose(self) -> None:
        await self._client.aclose()


def _request_headers(scope: Scope, request: Request) -> list[tuple[bytes, bytes]]:
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in _HOP_BY_HOP and name not in _FORWARDED
    ]
    # The address uvicorn settled on (it already honours a trusted proxy in front of us);
    # a client's own X-Forwarded-For is replaced, never believed.
    client = request.client.host if request.client else "unknown"
    headers.append((b"x-forwarded-for", client.encode("latin-1")))
    headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode("latin-1")))
    return headers


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk
