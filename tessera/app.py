"""create_app(settings): the composition root. Wires the store, writer and routers."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera import __version__
from tessera.api import (
    access,
    admin,
    audiences,
    catalog,
    destinations,
    governance,
    openapi,
    operations,
    personalize,
    plans,
    predict,
    profiles,
    segments,
)
from tessera.api.collect import collect_routes
from tessera.api.pixel import pixel_routes
from tessera.api.responses import error_response, http_error, json_response
from tessera.dependencies import Principal, Redirect
from tessera.errors import InvalidRequest, ServerFailure, TesseraError
from tessera.logs import RequestIds
from tessera.operations.metrics import Metrics
from tessera.privacy import audit, masking, oidc, roles
from tessera.privacy.attempts import FailedAttempts
from tessera.privacy.keys import hash_secret, load_or_create_admin_token
from tessera.runtime import Runtime
from tessera.settings import Settings
from tessera.web import access as web_access
from tessera.web import audiences as web_audiences
from tessera.web import catalog as web_catalog
from tessera.web import destinations as web_destinations
from tessera.web import governance as web_governance
from tessera.web import headers as web_headers
from tessera.web import oidc as web_oidc
from tessera.web import pages as web_pages
from tessera.web import people as web_people
from tessera.web import personalize as web_personalize
from tessera.web import predict as web_predict
from tessera.web import rendering as web_rendering
from tessera.web.session import SignInRequired

log = logging.getLogger(__name__)


def open_runtime(settings: Settings) -> Runtime:
    """What a server needs before it listens: an admin token strong enough, and the store
    (a second server on the same data directory is refused here, with StoreLocked).

    Called before uvicorn starts, so a refusal is a TesseraError the CLI prints as one
    line, not a traceback from inside the ASGI lifespan.
    """
    settings.check_admin_token()
    return Runtime.open(settings)


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the ASGI app around `runtime` (see open_runtime), which the caller then
    closes; without one, the server opens and closes its own (lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _tune_interpreter(settings)
        running = runtime or open_runtime(settings)
        token = load_or_create_admin_token(settings.admin_token_path, settings.admin_token)
        app.state.admin_token_hash = hash_secret(token)
        app.state.metrics = Metrics(running)
        running.start()
        app.state.runtime = running
        app.state.settings = settings
        app.state.collector = running.collector
        app.state.failed_tokens = FailedAttempts(settings.sign_in_failures_per_minute)
        app.state.oidc = oidc.Client(settings) if oidc.configured(settings) else None
        _announce(settings)
        try:
            yield
        finally:
            settings.server_file_path.unlink(missing_ok=True)
            if app.state.oidc is not None:
                app.state.oidc.close()
            if runtime is None:
                running.close()

    collect = collect_routes()
    decide = personalize.personalize_routes()
    app = _Tessera(
        [*collect, *decide],
        title="Tessera",
        version=__version__,
        description="Customer data platform: Segment-compatible collect API and admin API.",
        lifespan=lifespan,
        docs_url=None,  # served below from our own copy of Swagger UI, not a CDN
        redoc_url=None,
        # A name of slashes (GET /api/sources/%2F%2F) was redirected to the collection and
        # answered with every source; a trailing slash is now a 404 like any unknown path.
        redirect_slashes=False,
    )
    for route in [*collect, *pixel_routes(), *decide]:
        app.router.routes.append(route)
    app.include_router(admin.router)
    app.include_router(access.router)  # before profiles: /profiles/{reference:path} takes all
    app.include_router(profiles.router)
    app.include_router(segments.router)
    app.include_router(audiences.router)
    app.include_router(destinations.router)
    app.include_router(predict.router)
    app.include_router(operations.probes)
    app.include_router(operations.admin)
    app.include_router(catalog.router)
    app.include_router(personalize.router)
    app.include_router(governance.router)
    app.include_router(plans.router)
    openapi.install(app)
    app.add_exception_handler(StarletteHTTPException, http_error)

    # The console: pages at the root, static files (ours and the npm vendor files).
    app.include_router(web_pages.public)
    app.include_router(web_oidc.public)
    app.include_router(web_pages.router)
    app.include_router(web_access.router)  # before people: /profiles/{reference:path}
    app.include_router(web_people.router)
    app.include_router(web_audiences.router)
    app.include_router(web_destinations.router)
    app.include_router(web_predict.router)
    app.include_router(web_catalog.router)
    app.include_router(web_personalize.router)
    app.include_router(web_governance.router)
    app.mount("/static", StaticFiles(directory=web_rendering.STATIC), name="static")
    if missing := web_rendering.missing_vendor_files():
        log.warning("console files missing (%s): run `make install`", ", ".join(missing))

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, error: SignInRequired) -> Response:
        target = f"/sign-in?next={quote(error.next_path)}"
        if request.headers.get("hx-request"):  # htmx: a full-page redirect, not a swap
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Redirect)
    async def redirect(request: Request, error: Redirect) -> Response:
        return RedirectResponse(error.location, status_code=303)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Tessera API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            # Swagger UI asks validator.swagger.io for a badge unless told not to.
            swagger_ui_parameters={"validatorUrl": None},
        )
        hashes = web_headers.inline_script_hashes(bytes(page.body).decode())
        page.headers["Content-Security-Policy"] = web_headers.policy(hashes)
        return page

    @app.get("/api/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(TesseraError)
    async def tessera_error(request: Request, error: TesseraError) -> Response:
        if getattr(request.state, "console", False):
            return web_rendering.render(request, "error.html", {"error": error}, error.status)
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> Response:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            problems.append(f"{where}: {item.get('msg')} (got {item.get('input')!r})")
        return error_response(InvalidRequest("; ".join(problems) or "invalid request"))

    app.add_middleware(Accountable)
    app.add_middleware(CatchAll)
    app.add_middleware(web_headers.SecurityHeaders)
    return app


class Accountable:
    """What every authorised request owes once it is answered: an audit entry for each
    admin action (any method but GET on the admin API or the console, and every audience
    export), and masked identifiers in the JSON or HTML a role without PII access receives
    (`privacy/masking.py`). The principal is the one `dependencies.authorize` set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/v1/", "/static/")):
            await self.app(scope, receive, send)
            return
        status = 0
        held: list[Message] = []
        masked: bool | None = None

        async def watched_send(message: Message) -> None:
            nonlocal status, masked
            if message["type"] == "http.response.start":
                status = message["status"]
                principal = _principal(scope)
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                masked = (
                    principal is not None
                    and not principal.sees_identifiers
                    and (b"json" in kind or b"html" in kind)
                )
                if masked:
                    held.append(message)
                    return
            elif masked:
                held.append(message)
                if not message.get("more_body"):
                    await _send_masked(held, send)
                return
            await send(message)

        await self.app(scope, receive, watched_send)
        principal = _principal(scope)
        method, path = scope["method"], scope["path"]
        route = str(getattr(scope.get("route"), "path", None) or path)
        exporting = route.endswith("/export") and path.startswith("/api/audiences/")
        if principal is None or path in ("/sign-in", "/sign-out"):
            return
        if roles.needs(method, route) == "read" and not exporting:
            return  # reads (and POSTs that only check, like the segment editor's) are not actions
        params = scope.get("path_params") or {}
        runtime = scope["app"].state.runtime
        try:
            await _audit(runtime, principal, method, route, params, exporting, scope, status)
        except Exception:  # the answer is out; a lost entry is logged, never a second answer
            log.exception("could not write the audit entry for %s %s", method, route)


async def _audit(
    runtime: Any,
    principal: Principal,
    method: str,
    route: str,
    params: dict[str, Any],
    exporting: bool,
    scope: Scope,
    status: int,
) -> None:
    client = scope.get("client")
    await run_in_threadpool(
        audit.record, runtime.store, principal.actor,
        "export" if exporting else f"{method} {route}",
        "/".join(str(v) for v in params.values()) or None,
        {"query": scope.get("query_string", b"").decode()[:500]} if exporting else None,
        role=principal.role, address=client[0] if client else None,
        outcome="ok" if status < 400 else str(status),
    )  # fmt: skip


def _principal(scope: Scope) -> Principal | None:
    principal = scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


async def _send_masked(held: list[Message], send: Send) -> None:
    start, parts = held[0], held[1:]
    body = b"".join(part.get("body", b"") for part in parts)
    kind = dict(start.get("headers", [])).get(b"content-type", b"")
    if b"json" in kind:
        try:
            body = orjson.dumps(masking.mask_json(orjson.loads(body)))
        except orjson.JSONDecodeError:
            body = masking.mask_text(body.decode(errors="replace")).encode()
    else:
        body = masking.mask_html(body.decode(errors="replace")).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Tessera(FastAPI):
    """FastAPI whose collect endpoints are reached by `CollectLane`, in front of the rest,
    and every request by `RequestIds` (tessera/logs.py) first."""

    def __init__(self, collect: list[Route], **options: Any) -> None:
        super().__init__(**options)
        self._collect = collect

    def build_middleware_stack(self) -> ASGIApp:
        return RequestIds(CollectLane(super().build_middleware_stack(), self._collect))


class CollectLane:
    """Sends a collect request (POST or OPTIONS on /v1/batch, /v1/track, ...), or a decision
    (GET, POST or OPTIONS on /v1/personalize), straight to its endpoint, with the security
    headers and the last-resort 500 that every answer gets; everything else goes through
    the full stack.

    Between uvicorn and the collect endpoint FastAPI and Starlette put nine layers
    (server errors, telemetry, a body limit, exception handlers, an exit stack, the
    router, the request wrapper...): 5.7% of the server's time under ingest load, 2.3%
    with this lane (py-spy, docs/ingest.md "What a message costs"). The collect endpoints
    need none of them: they read their own body with its limit and answer every error
    themselves. Any other method or path (a GET on /v1/batch answers its 405 as before)
    takes the full stack.
    """

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.lanes: dict[str, tuple[frozenset[str], ASGIApp]] = {
            route.path: (
                frozenset(route.methods or ()) & _LANE_METHODS,
                web_headers.SecurityHeaders(CatchAll(_endpoint_app(route))),
            )
            for route in routes
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            lane = self.lanes.get(scope["path"])
            if lane is not None and scope["method"] in lane[0]:
                await lane[1](scope, receive, send)
                return
        await self.app(scope, receive, send)


#: The methods a lane takes: the collect endpoints' POST and OPTIONS, and the decision
#: API's GET too (`api/personalize.py`); any other method takes the full stack (its 405).
_LANE_METHODS = frozenset(("GET", "POST", "OPTIONS"))


def _endpoint_app(route: Route) -> ASGIApp:
    endpoint = route.endpoint

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return answer


class CatchAll:
    """Answers an exception no handler took as a 500: a JSON error for the API, the error
    page for the console. Starlette's own last resort (ServerErrorMiddleware) answers and
    then re-raises, and uvicorn closes the connection on the re-raise, so the client's next
    request on that keep-alive connection was reset; here the error ends with the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            log.exception("unhandled error")
            if started:  # half an answer is out: only closing the connection can say so
                raise
            await _failure_page(scope)(scope, receive, send)


def _failure_page(scope: Scope) -> Response:
    request = Request(scope)
    if getattr(request.state, "console", False):
        problem = ServerFailure("the server failed; its log says why")
        return web_rendering.render(request, "error.html", {"error": problem}, 500)
    return json_response(
        {"success": False, "code": "internal", "message": "the server failed; see its log"}, 500
    )


def _tune_interpreter(settings: Settings) -> None:
    """Each 100-event batch allocates thousands of short-lived dicts. With CPython's
    default thresholds the cyclic GC ran every ~700 allocations and took a quarter of
    ingest CPU (py-spy); raising gen0's threshold and freezing start-up objects took
    ingest from 45k to 64k events/s. Nothing on the hot path makes reference cycles.
    Not higher than (10,000, 10, 100): a collection holds the GIL while it traverses its
    generation, and at (100,000, 50, 100) beside 100k profiles' memory a young collection
    took 40-190 ms and a middle one up to 1.2 s while requests waited; at these, up to 20
    and 100 ms, and ingest measured no slower (docs/personalize.md and docs/ingest.md,
    2026-12-03, night). `tessera serve` also freezes the loaded memory
    (`cpu_policy.FreezeMemory`), which no collection then traverses.

    The switch interval: a request's answer needs the GIL several times (read, handle,
    write), and each time a busy background thread (the pipeline, a refresh) may hold it
    up to the interval; at the default 5 ms those waits added up to a decision p99 near a
    second under ingest (docs/personalize.md, 2026-12-03)."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 100)
    sys.setswitchinterval(settings.switch_interval_ms / 1000)


def _announce(settings: Settings) -> None:
    """Leave server.json so CLI commands talk to this server instead of the locked file."""
    info = {"pid": os.getpid(), "url": f"http://{settings.host}:{settings.port}"}
    settings.server_file_path.write_bytes(orjson.dumps(info))
