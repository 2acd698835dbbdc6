"""The pixel, the opt-out switch and cookie syncs: GET endpoints a browser hits from an
<img> tag or a redirect. Raw Starlette routes like the collect API (and like it, they find
`app.state.collector` and `app.state.settings`, so a collector process mounts them too);
they always answer something a browser can show (the 1x1 GIF, or a redirect to an
allow-listed partner)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tessera.audiences import pixel
from tessera.errors import TesseraError
from tessera.events.collect import Collector
from tessera.events.timestamps import now_micros
from tessera.settings import Settings

log = logging.getLogger(__name__)
_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
}
_OPT_OUT_SECONDS = 5 * 365 * 86_400


def _gif(headers: dict[str, str], cookies: Sequence[str] = ()) -> Response:
    response = Response(pixel.GIF, media_type="image/gif", headers={**_NO_CACHE, **headers})
    for cookie in cookies:
        response.headers.append("Set-Cookie", cookie)
    return response


async def _record(collector: Collector, key: str | None, message: dict[str, object]) -> str | None:
    """Store one message for the write key's source; the problem, if any, as text."""
    if not key:
        return "missing wk: the pixel needs a source's write key (wk=...)"
    try:
        submission = collector.submit_messages(key, [message], received_at=now_micros())
        await asyncio.wrap_future(submission.future)
    except TesseraError as error:
        return error.message
    except Exception:  # the page must get its GIF whatever happens here
        log.exception("pixel failed")
        return "the server failed; see its log"
    return submission.error.message if submission.error else None


async def pixel_gif(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    who = pixel.visitor(dict(request.cookies), dict(request.headers), request.url.scheme)
    if who.opted_out:
        return _gif({"X-Tessera-Recorded": "no (opted out)"})
    cookie_id = who.cookie_id or pixel.new_cookie_id()
    params = dict(request.query_params)
    message = pixel.page_message(
        params,
        cookie_id,
        request.headers.get("user-agent"),
        refuses_advertising=who.refuses_advertising,
    )
    problem = await _record(
        request.app.state.collector, params.get("wk") or params.get("writeKey"), message
    )
    if problem:
        return _gif({"X-Tessera-Recorded": "no", "X-Tessera-Error": _header_safe(problem)})
    lifetime = settings.lifetime_days("cookie_id") * 86_400
    # Set on every hit: the lifetime runs from the last visit, as the purge counts it.
    cookie = pixel.cookie_header(pixel.COOKIE, cookie_id, lifetime, https=who.https)
    return _gif({"X-Tessera-Recorded": "yes"}, [cookie])


async def opt_out(request: Request) -> Response:
    """`/v1/optout` stops the pixel recording this browser (and forgets its cookie id);
    `/v1/optout?undo=1` lets it record again."""
    who = pixel.visitor(dict(request.cookies), dict(request.headers), request.url.scheme)
    if request.query_params.get("undo") == "1":
        cookies = [pixel.cookie_header(pixel.OPT_OUT_COOKIE, "", 0, https=who.https)]
    else:
        cookies = [
            pixel.cookie_header(pixel.OPT_OUT_COOKIE, "1", _OPT_OUT_SECONDS, https=who.https),
            pixel.cookie_header(pixel.COOKIE, "", 0, https=who.https),
        ]
    return _gif({}, cookies)


async def cookie_sync(request: Request) -> Response:
    """Redirect-based ID sync with an allow-listed partner (TESSERA_SYNC_PARTNERS).
    Without `puid`, the browser is sent to the partner with our cookie id; with it (the
    partner sending the browser back, or starting the sync), the two ids are recorded."""
    settings: Settings = request.app.state.settings
    params = dict(request.query_params)
    partner = params.get("partner", "")
    template = settings.sync_partners.get(partner)
    if template is None:
        known = ", ".join(sorted(settings.sync_partners)) or "none configured"
        return _gif(
            {"X-Tessera-Error": _header_safe(f"partner {partner!r} is not allowed ({known})")}
        )
    who = pixel.visitor(dict(request.cookies), dict(request.headers), request.url.scheme)
    if who.opted_out:
        return _gif({"X-Tessera-Recorded": "no (opted out)"})
    cookie_id = who.cookie_id or pixel.new_cookie_id()
    lifetime = settings.lifetime_days("cookie_id") * 86_400
    cookie = pixel.cookie_header(
        pixel.COOKIE, cookie_id, lifetime, https=who.https, cross_site=True
    )
    partner_user_id = (params.get("puid") or "").strip()[:200]
    if not partner_user_id:
        response = RedirectResponse(pixel.partner_redirect(template, cookie_id), status_code=302)
        response.headers.update(_NO_CACHE)
        response.headers.append("Set-Cookie", cookie)
        return response
    message = pixel.sync_message(partner, partner_user_id, cookie_id)
    problem = await _record(
        request.app.state.collector, params.get("wk") or params.get("writeKey"), message
    )
    if problem:
        return _gif({"X-Tessera-Recorded": "no", "X-Tessera-Error": _header_safe(problem)})
    return _gif({"X-Tessera-Recorded": "yes"}, [cookie])


def _header_safe(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:300].replace("\n", " ")


Handler = Callable[[Request], Awaitable[Response]]


def _gif_whatever_happens(handler: Handler) -> Handler:
    """The tag sits in a customer's page: a failure of ours must still answer the GIF (a
    broken image would show there), never a JSON 500."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception:
            log.exception("pixel endpoint failed")
            return _gif({"X-Tessera-Recorded": "no",
                         "X-Tessera-Error": "the server failed; see its log"})  # fmt: skip

    return guarded


def pixel_routes() -> list[Route]:
    return [
        Route("/v1/pixel.gif", _gif_whatever_happens(pixel_gif), methods=["GET"]),
        Route("/v1/optout", _gif_whatever_happens(opt_out), methods=["GET"]),
        Route("/v1/sync", _gif_whatever_happens(cookie_sync), methods=["GET"]),
    ]
