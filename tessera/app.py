"""create_app(settings): the composition root. Wires the store, writer and routers."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera import __version__
from tessera.api import (
    admin,
    audiences,
    destinations,
    governance,
    openapi,
    plans,
    profiles,
    segments,
)
from tessera.api.collect import collect_routes
from tessera.api.pixel import pixel_routes
from tessera.api.responses import error_response, http_error, json_response
from tessera.errors import InvalidRequest, ServerFailure, TesseraError
from tessera.privacy.attempts import FailedAttempts
from tessera.privacy.keys import hash_secret, load_or_create_admin_token
from tessera.runtime import Runtime
from tessera.settings import Settings
from tessera.web import audiences as web_audiences
from tessera.web import destinations as web_destinations
from tessera.web import governance as web_governance
from tessera.web import headers as web_headers
from tessera.web import pages as web_pages
from tessera.web import people as web_people
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
        _tune_garbage_collector()
        running = runtime or open_runtime(settings)
        token = load_or_create_admin_token(settings.admin_token_path, settings.admin_token)
        app.state.admin_token_hash = hash_secret(token)
        running.start()
        app.state.runtime = running
        app.state.settings = settings
        app.state.collector = running.collector
        app.state.failed_tokens = FailedAttempts(settings.sign_in_failures_per_minute)
        _announce(settings)
        try:
            yield
        finally:
            settings.server_file_path.unlink(missing_ok=True)
            if runtime is None:
                running.close()

    collect = collect_routes()
    app = _Tessera(
        collect,
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
    for route in [*collect, *pixel_routes()]:
        app.router.routes.append(route)
    app.include_router(admin.router)
    app.include_router(profiles.router)
    app.include_router(segments.router)
    app.include_router(audiences.router)
    app.include_router(destinations.router)
    app.include_router(governance.router)
    app.include_router(plans.router)
    openapi.install(app)
    app.add_exception_handler(StarletteHTTPException, http_error)

    # The console: pages at the root, static files (ours and the npm vendor files).
    app.include_router(web_pages.public)
    app.include_router(web_pages.router)
    app.include_router(web_people.router)
    app.include_router(web_audiences.router)
    app.include_router(web_destinations.router)
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

    app.add_middleware(CatchAll)
    app.add_middleware(web_headers.SecurityHeaders)
    return app


class _Tessera(FastAPI):
    """FastAPI whose collect endpoints are reached by `CollectLane`, in front of the rest."""

    def __init__(self, collect: list[Route], **options: Any) -> None:
        super().__init__(**options)
        self._collect = collect

    def build_middleware_stack(self) -> ASGIApp:
        return CollectLane(super().build_middleware_stack(), self._collect)


class CollectLane:
    """Sends a collect request (POST or OPTIONS on /v1/batch, /v1/track, ...) straight to
    its endpoint, with the security headers and the last-resort 500 that every answer
    gets; everything else goes through the full stack.

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
        self.lanes: dict[str, ASGIApp] = {
            route.path: web_headers.SecurityHeaders(CatchAll(_endpoint_app(route)))
            for route in routes
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _COLLECT_METHODS
            and not scope.get("root_path")
        ):
            lane = self.lanes.get(scope["path"])
            if lane is not None:
                await lane(scope, receive, send)
                return
        await self.app(scope, receive, send)


_COLLECT_METHODS = frozenset(("POST", "OPTIONS"))


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


def _tune_garbage_collector() -> None:
    """Each 100-event batch allocates thousands of short-lived dicts. With CPython's
    default thresholds the cyclic GC ran every ~700 allocations and took a quarter of
    ingest CPU (py-spy); raising gen0's threshold and freezing start-up objects took
    ingest from 45k to 64k events/s. Nothing on the hot path makes reference cycles."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _announce(settings: Settings) -> None:
    """Leave server.json so CLI commands talk to this server instead of the locked file."""
    info = {"pid": os.getpid(), "url": f"http://{settings.host}:{settings.port}"}
    settings.server_file_path.write_bytes(orjson.dumps(info))
