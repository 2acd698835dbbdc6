"""The ASGI app of one collector process: the collect API and the pixel, and the core for
everything else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from tessera.api.collect import collect_routes
from tessera.api.pixel import pixel_routes
from tessera.collector.proxy import CoreProxy
from tessera.events.collect import Collector
from tessera.settings import Settings
from tessera.web.headers import SecurityHeaders


def create_collector_app(settings: Settings, collector: Collector, proxy: CoreProxy) -> Starlette:
    """/v1/* and the pixel served here, from `collector`; any other path (and any method
    those paths do not take, so the core's 405 answers it) passed to the core by `proxy`."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await proxy.aclose()

    app = Starlette(
        routes=[*collect_routes(), *pixel_routes(), Mount("/", app=proxy)],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.collector = collector
    return app
