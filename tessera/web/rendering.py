"""Templates and the page response: Jinja2 with autoescaping, a few display filters, and
a Server-Timing header carrying how long the server took (benchmarks/console.py reads it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from tessera import __version__
from tessera.privacy import roles
from tessera.results import shown

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: Copied from node_modules by `make` (package.json pins the versions).
VENDOR_FILES = ("htmx.min.js", "chart.umd.min.js", "swagger-ui-bundle.js", "swagger-ui.css")

#: Each channel's mark on the timeline: a letter badge plus the channel's name, so the
#: mark does not rely on colour alone.
CHANNEL_MARKS = {
    "web": "W", "mobile": "M", "email": "E", "chat": "C", "phone": "P",
    "pos": "S", "crm": "R", "ads": "A", "server": "V", "other": "O",
}  # fmt: skip

templates = Jinja2Templates(directory=str(HERE / "templates"))


def _when(value: str | None) -> str:
    """'2026-11-29T09:20:06.598463Z' → '2026-11-29 09:20:06'."""
    if not value:
        return "—"
    return str(value).replace("T", " ").split(".")[0].rstrip("Z")


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _value(value: Any) -> str:
    """A trait's value as a cell shows it (`results.shown`), none as a dash."""
    return "—" if value is None else shown(value)


templates.env.filters["when"] = _when
templates.env.filters["value"] = _value
templates.env.filters["pretty"] = _pretty
templates.env.globals["version"] = __version__
templates.env.globals["channel_marks"] = CHANNEL_MARKS


def may_see(request: Request, path: str, method: str = "GET") -> bool:
    """Does the signed-in principal's role reach this page (a path, or a route's template
    such as "/profiles/{reference:path}/unmerge")? (The nav shows only those; the
    check that counts is `dependencies.authorize`.) The look-up is the agent's alone."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return path != "/lookup"
    if path == "/lookup":
        return bool(principal.role == "agent")
    return roles.allowed(principal.role, method, path, principal.scopes)


templates.env.globals["may_see"] = may_see


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    response = templates.TemplateResponse(request, name, context or {}, status_code=status)
    started = getattr(request.state, "started", None)
    if started is not None:
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
    return response


def missing_vendor_files() -> list[str]:
    return [name for name in VENDOR_FILES if not (STATIC / "vendor" / name).exists()]
