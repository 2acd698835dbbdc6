"""The ASGI app of one collector process: the collect API and the pixel, and the core for
everything else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from tessera.api.collect import collect_routes
from tessera.api.pixel import pixel_routes
from tessera.collector.proxy import CoreProxy
from tessera.events.collect import Collector
from tessera.logs import RequestIds
from tessera.settings import Settings
from tessera.web.headers import SecurityHeaders


class _CollectRouter(Router):
    """Serves a request here only when one of `routes` takes its path AND its method; any
    other request goes to `core`, whole: an unknown path, a path Starlette would not match
    (an encoded newline in it), a method the collect paths do not take (so the answer is the
    core's, in the core's error shape, with its Allow)."""

    def __init__(self, routes: list[Route], core: ASGIApp, **options: object) -> None:
        super().__init__(routes=routes, **options)  # type: ignore[arg-type]
        self._core = core

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)  # the lifespan
            return
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
        await self._core(scope, receive, send)


def create_collector_app(settings: Settings, collector: Collector, proxy: CoreProxy) -> Starlette:
    """/v1/* and the pixel served here, from `collector`; every other request passed to the
    core by `proxy`."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await proxy.aclose()

    routes = [*collect_routes(), *pixel_routes()]
    app = Starlette(
        middleware=[Middleware(RequestIds, log_requests=False), Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )
    # Before the first request, when Starlette builds its middleware stack around it.
    app.router = _CollectRouter(routes, proxy, lifespan=lifespan)
    app.state.settings = settings
    app.state.collector = collector
    return app
