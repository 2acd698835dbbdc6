"""Console sign-in through an OpenID Connect provider (`privacy/oidc.py` does the work).

`GET /sign-in/oidc` sends the browser to the provider with a fresh state, nonce and PKCE
challenge, keeping them in a signed ten-minute cookie; `GET /sign-in/oidc/callback` is
where the provider sends it back. Every outcome goes to the audit log like a password
sign-in (action `sign-in`, `via: oidc`), failures count against the address's sign-in
limit, and no claim, code or token is logged.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tessera.dependencies import RuntimeDep
from tessera.errors import NotFound, TesseraError
from tessera.privacy import audit, oidc
from tessera.privacy.attempts import FailedAttempts
from tessera.web import session
from tessera.web.pages import sign_in_context
from tessera.web.rendering import render

public = APIRouter(include_in_schema=False)
CALLBACK = "/sign-in/oidc/callback"


def _client(request: Request) -> oidc.Client:
    client: oidc.Client | None = getattr(request.app.state, "oidc", None)
    if client is None:
        raise NotFound("OIDC sign-in is not configured here (TESSERA_OIDC_ISSUER)")
    return client


def _redirect_uri(request: Request) -> str:
    configured = request.app.state.settings.oidc_redirect_url
    return str(configured) if configured else str(request.url_for("oidc_callback"))


@public.get("/sign-in/oidc")
async def oidc_begin(request: Request, next: str = "/") -> Response:
    client = _client(request)
    redirect_uri = _redirect_uri(request)
    try:
        begun = await run_in_threadpool(client.begin, redirect_uri)
    except oidc.ProviderUnavailable as e:
        context = sign_in_context(request, next, error=f"{e.message}. Sign in with a password.")
        return render(request, "sign_in.html", context, status=e.status)
    pending = {"state": begun.state, "nonce": begun.nonce, "verifier": begun.verifier,
               "next": session.safe_next(next), "redirect_uri": redirect_uri}  # fmt: skip
    response = RedirectResponse(begun.url, status_code=303)
    # Lax, not Strict: the provider's redirect back is a cross-site navigation, and a
    # Strict cookie would not come with it. It holds only random values for this sign-in.
    response.set_cookie(
        session.PENDING_COOKIE, session.issue_pending(request.app.state.admin_token_hash, pending),
        max_age=session.PENDING_SECONDS, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/sign-in/oidc",
    )  # fmt: skip
    return response


@public.get(CALLBACK, name="oidc_callback")
async def oidc_callback(
    request: Request, runtime: RuntimeDep, code: str = "", state: str = "", error: str = ""
) -> Response:
    client = _client(request)
    key: str = request.app.state.admin_token_hash
    limit: FailedAttempts = request.app.state.failed_tokens
    address = request.client.host if request.client else "unknown"
    if (wait := limit.retry_after(address)) is not None:
        problem = f"Too many failed sign-ins from your address; try again in {wait} seconds."
        response = render(request, "sign_in.html", sign_in_context(request, "/", error=problem),
                          status=429)  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    pending = session.pending_of(request.cookies.get(session.PENDING_COOKIE), key) or {}
    try:
        if error:
            # The provider's own code (access_denied, login_required...), a fixed vocabulary.
            raise oidc.SignInRefused(f"the provider did not sign you in ({error[:64]})")
        if not pending:
            raise oidc.SignInRefused("this sign-in was not started here or took over ten minutes")
        admitted = await run_in_threadpool(_admit, runtime, client, code, state, pending)
    except TesseraError as refused:
        await run_in_threadpool(
            audit.record, runtime.store, "anonymous", "sign-in", None,
            {"via": "oidc", "reason": refused.code}, role=None, address=address,
            outcome="failed",
        )  # fmt: skip
        limit.failed(address)
        context = sign_in_context(request, pending.get("next"),
                                  error=f"Sign-in refused: {refused.message}.")  # fmt: skip
        response = render(request, "sign_in.html", context, status=refused.status)
        response.delete_cookie(session.PENDING_COOKIE, path="/sign-in/oidc")
        return response
    await run_in_threadpool(
        audit.record, runtime.store, admitted.user[:64], "sign-in", None,
        {"via": "oidc", "provisioned": admitted.provisioned}, role=admitted.role,
        address=address, outcome="ok",
    )  # fmt: skip
    limit.succeeded(address)
    target = session.safe_next(pending.get("next"))
    # A page that moves on by itself rather than a 303: the browser came here from the
    # provider (another site), and a redirect chain started by another site does not send
    # the session's SameSite=Strict cookie, so "/" would ask to sign in again.
    page = (
        f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url='
        f'{escape(target)}"><title>Signed in</title><p>Signed in. <a href="{escape(target)}">'
        "Continue</a></p>"
    )
    response = HTMLResponse(page)
    session.set_session(response, request, key, admitted.user)
    response.delete_cookie(session.PENDING_COOKIE, path="/sign-in/oidc")
    return response


def _admit(
    runtime: Any, client: oidc.Client, code: str, state: str, pending: dict[str, str]
) -> oidc.Admitted:
    claims = client.complete(
        code=code, state=state, expected_state=pending.get("state", ""),
        nonce=pending.get("nonce", ""), verifier=pending.get("verifier", ""),
        redirect_uri=pending.get("redirect_uri", ""),
    )  # fmt: skip
    return oidc.admit(runtime.store, runtime.settings, claims)
