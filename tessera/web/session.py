"""Signing in to the console with the admin token.

The cookie holds an expiry and an HMAC of it keyed by the admin token's hash, so no
session table is needed, a changed admin token signs everyone out, and the token itself
never sits in the browser. HttpOnly (no script can read it) and SameSite=Strict (no other
site can post a form with it, which is the console's CSRF protection).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request

COOKIE = "tessera_session"
LIFETIME_SECONDS = 12 * 3600


class SignInRequired(Exception):
    """Raised by a console page when there is no valid session; answered with a redirect."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def issue(key: str, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + LIFETIME_SECONDS)
    return f"{expires}.{_signature(key, expires)}"


def is_valid(cookie: str | None, key: str, now: float | None = None) -> bool:
    if not cookie:
        return False
    expires, _, signature = cookie.partition(".")
    if not expires.isdigit():
        return False
    if int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature, _signature(key, int(expires)))


def safe_next(path: str | None) -> str:
    """Only a path on this server ('/x', not '//evil.example' or 'https://...')."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


async def require_session(request: Request) -> None:
    """Console pages' dependency: marks the request as the console's (errors become pages)
    and sends anyone without a session to the sign-in page."""
    request.state.console = True
    request.state.started = time.perf_counter()
    if not is_valid(request.cookies.get(COOKIE), request.app.state.admin_token_hash):
        query = f"?{request.url.query}" if request.url.query else ""
        raise SignInRequired(request.url.path + query)


def _signature(key: str, expires: int) -> str:
    return hmac.new(key.encode(), f"console:{expires}".encode(), hashlib.sha256).hexdigest()
