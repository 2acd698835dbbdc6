"""Security headers on every answer: a strict Content-Security-Policy, no framing, no
MIME sniffing.

The console and the API documentation load nothing from another host and run no inline
script or style (the templates keep their behaviour in /static/app.js), so the policy
allows our own origin only. A page that must run a known inline script (Swagger UI's
start-up) names it by hash (`policy(script_hashes=...)`) and sets its own header, which
the middleware leaves alone.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def policy(script_hashes: Iterable[str] = ()) -> str:
    """The Content-Security-Policy: our origin only; images may also be data: URIs (Swagger
    UI's icons, Chart.js exports); no plug-ins, no <base>, no framing by any site."""
    scripts = " ".join(["'self'", *(f"'{digest}'" for digest in script_hashes)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def inline_script_hashes(html: str) -> list[str]:
    """CSP source expressions (`sha256-...`) for each inline <script> of `html`."""
    return [
        "sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        for body in _INLINE_SCRIPT.findall(html)
    ]


HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", policy().encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding `HEADERS` to every HTTP answer that does not set them itself.
    Plain ASGI (not BaseHTTPMiddleware): it costs the collect API's hot path one loop over
    the headers and nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in HEADERS if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
