"""Signing in to the console: as a user (name and password), or with the admin token.

The cookie holds an expiry, the user's name (empty for the admin token) and an HMAC of
both keyed by the admin token's hash, so no session table is needed, a changed admin
token signs everyone out, and the token itself never sits in the browser. A user's role
and whether they are still enabled are read on every request, so a change applies at
once. HttpOnly (no script can read it) and SameSite=Strict (no other
site can post a form with it, which is the console's CSRF protection).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson
from fastapi import Request
from starlette.responses import Response

from tessera.dependencies import ADMIN, Principal, authorize
from tessera.privacy import users

COOKIE = "tessera_session"
#: A begun OIDC sign-in: its state, nonce and PKCE verifier, until the provider sends the
#: browser back (`web/oidc.py`).
PENDING_COOKIE = "tessera_oidc"
PENDING_SECONDS = 600
LIFETIME_SECONDS = 12 * 3600


class SignInRequired(Exception):
    """Raised by a console page when there is no valid session; answered with a redirect."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def issue(key: str, now: float | None = None, user: str = "") -> str:
    expires = int((now if now is not None else time.time()) + LIFETIME_SECONDS)
    return f"{expires}.{_signature(key, expires, user)}.{user}"


def set_session(response: Response, request: Request, key: str, user: str) -> None:
    """Put a new session for `user` ("" for the admin token) on `response`."""
    response.set_cookie(
        COOKIE,
        issue(key, user=user),
        max_age=LIFETIME_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def user_of(cookie: str | None, key: str, now: float | None = None) -> str | None:
    """The user a valid cookie names ("" for the admin token), or None."""
    if not cookie:
        return None
    expires, _, rest = cookie.partition(".")
    signature, _, user = rest.partition(".")
    if not expires.isdigit():
        return None
    if int(expires) < (now if now is not None else time.time()):
        return None
    if not hmac.compare_digest(signature, _signature(key, int(expires), user)):
        return None
    return user


def is_valid(cookie: str | None, key: str, now: float | None = None) -> bool:
    return user_of(cookie, key, now) is not None


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
    user = user_of(request.cookies.get(COOKIE), request.app.state.admin_token_hash)
    principal: Principal | None = ADMIN if user == "" else None
    if user:
        role = users.active_role(request.app.state.runtime.store, user)
        principal = Principal(user, role) if role else None
    if principal is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise SignInRequired(request.url.path + query)
    await authorize(request, principal)


def _signature(key: str, expires: int, user: str = "") -> str:
    # The admin token's cookie signs what it always did, so sessions survive the upgrade.
    message = f"console:{expires}" if not user else f"console:{expires}:{user}"
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue_pending(key: str, values: dict[str, str], now: float | None = None) -> str:
    """A signed, expiring cookie value for a begun OIDC sign-in. It holds only random
    values (state, nonce, verifier) and the page to return to; the signature stops a
    browser from choosing its own."""
    expires = int((now if now is not None else time.time()) + PENDING_SECONDS)
    body = base64.urlsafe_b64encode(orjson.dumps({**values, "expires": expires})).decode()
    return f"{body}.{_pending_signature(key, body)}"


def pending_of(cookie: str | None, key: str, now: float | None = None) -> dict[str, str] | None:
    """The values of a valid, unexpired pending cookie, or None."""
    if not cookie or "." not in cookie:
        return None
    body, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(signature, _pending_signature(key, body)):
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(values, dict) or not isinstance(values.get("expires"), int):
        return None
    if values["expires"] < (now if now is not None else time.time()):
        return None
    return {k: str(v) for k, v in values.items() if k != "expires"}


def _pending_signature(key: str, body: str) -> str:
    return hmac.new(key.encode(), f"oidc:{body}".encode(), hashlib.sha256).hexdigest()
