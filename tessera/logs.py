"""The server's log: text for people or JSON lines for a log collector, with request ids.

Every process of `tessera serve` (the core and each collector) calls `configure` once
with the Settings; uvicorn is started with `log_config=None` so its lines come through
the same handler. `RequestIds` gives each HTTP request an id (the client's X-Request-ID
when it is a sane token, else a new one), answers it in X-Request-ID, and puts it on
every line logged while the request runs, across threads started for it.

Personal data never goes to the log: Tessera's own lines name types, counts and places,
never values (see events/failures.py); the access line carries the route's template
(`/api/profiles/{reference}`), never the path or the query string a person's e-mail may
sit in. tests/api/test_operations.py greps a server's log for what it was sent.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from traceback import format_tb
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera.settings import Settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tessera_request_id", default=None
)
access = logging.getLogger("tessera.access")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: the collect API and the pixel: thousands of requests a second, logged at debug only
_QUIET_PREFIXES = ("/v1/", "/pixel")
_HEADER = b"x-request-id"
_WORD = re.compile(r"[a-z][a-z-]{0,23}")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, process, message, request_id,
    and an exception's type and place (its message may quote data: not written)."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process_name,
            "message": record.getMessage(),
        }
        if (rid := getattr(record, "request_id", None)) is not None:
            line["request_id"] = rid
        for key in ("method", "route", "status", "ms"):
            if (value := getattr(record, key, None)) is not None:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            error, traceback = record.exc_info[0], record.exc_info[2]
            line["error_type"] = error.__name__
            if traceback is not None:
                # The frames (file, line, code), never the exception's message.
                line["stack"] = "".join(format_tb(traceback))
                while traceback.tb_next is not None:
                    traceback = traceback.tb_next
                code = traceback.tb_frame.f_code
                line["error_at"] = f"{code.co_filename.rsplit('/', 1)[-1]}:{traceback.tb_lineno}"
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


def configure(settings: Settings, process_name: str) -> None:
    """Send this process's log to stderr in `settings.log_format` at `settings.log_level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(process_name))
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Libraries that would log request details (URLs with query strings) at info.
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestIds:
    """ASGI middleware: a request id per HTTP request, answered and logged (see above).

    The id is also put in the request's headers, so a collector process that passes the
    request to the core passes its id along: one id in both processes' logs. The
    collector leaves the access line to the core (`log_requests=False`)."""

    def __init__(self, app: ASGIApp, *, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for key, value in scope["headers"] if key == _HEADER), b"")
        text = given.decode("latin-1")
        rid = text if _SANE_ID.fullmatch(text) else uuid.uuid4().hex
        if rid != text:
            headers = [(key, value) for key, value in scope["headers"] if key != _HEADER]
            scope = {**scope, "headers": [*headers, (_HEADER, rid.encode())]}
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (key, value) for key, value in message.get("headers", []) if key != _HEADER
                ]
                message["headers"] = [*headers, (_HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log_requests:
                _log_access(scope, status, time.perf_counter() - started)
            request_id.reset(token)


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    path = str(scope.get("path", ""))
    level = logging.DEBUG if path.startswith(_QUIET_PREFIXES) else logging.INFO
    if not access.isEnabledFor(level):
        return
    route = getattr(scope.get("route"), "path", None) or _route_of(path)
    access.log(
        level,
        "%s %s %d",
        scope.get("method", ""),
        route,
        status,
        extra={"method": scope.get("method"), "route": route, "status": status,
               "ms": round(seconds * 1000, 1)},
    )  # fmt: skip


def _route_of(path: str) -> str:
    """A path no route matched (a 404, a static file): its first part when that is a
    plain word, else "-": the rest may be a value someone typed."""
    parts = path.split("/")
    first = parts[1] if len(parts) > 1 else ""
    if not _WORD.fullmatch(first):
        return "-"
    return f"/{first}/..." if len(parts) > 2 else f"/{first}"
