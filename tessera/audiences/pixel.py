"""The first-party pixel and cookie syncs, as pure functions over a request's parts.

`GET /v1/pixel.gif?wk=WRITE_KEY&url=...&ref=...&title=...` records a page view (or a track
event with `event=NAME`) for the visitor's first-party cookie id, setting the cookie when the
browser has none. A browser that sends Do-Not-Track or Global Privacy Control, or carries the
opt-out cookie, is not recorded and gets no cookie. Whatever the input, the answer is the 1x1
GIF: a broken pixel would show on the customer's page.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

COOKIE = "tessera_cid"
OPT_OUT_COOKIE = "tessera_optout"
#: The smallest transparent GIF (43 bytes).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_COOKIE_ID = re.compile(r"^[0-9a-f]{32}$")
_UTM = {"utm_source": "source", "utm_medium": "medium", "utm_campaign": "name",
        "utm_term": "term", "utm_content": "content"}  # fmt: skip
_MAX_TEXT = 2_000


@dataclass(frozen=True)
class Visitor:
    """What the request says about the browser."""

    cookie_id: str | None  # a well-formed id from our cookie, or None
    opted_out: bool  # the opt-out cookie: nothing is recorded
    refuses_advertising: bool  # DNT: 1 or Sec-GPC: 1: recorded, advertising refused
    https: bool


def visitor(cookies: dict[str, str], headers: dict[str, str], scheme: str) -> Visitor:
    raw = cookies.get(COOKIE, "")
    forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return Visitor(
        cookie_id=raw if _COOKIE_ID.match(raw) else None,
        opted_out=cookies.get(OPT_OUT_COOKIE) == "1",
        # Global Privacy Control is a legal opt-out of sale and targeted advertising (CCPA
        # regulations §7025); Do-Not-Track is read the same way. Neither refuses analytics.
        refuses_advertising=headers.get("dnt") == "1" or headers.get("sec-gpc") == "1",
        https=scheme == "https" or forwarded == "https",
    )


def new_cookie_id() -> str:
    return uuid.uuid4().hex


def cookie_header(
    name: str, value: str, max_age: int, *, https: bool, cross_site: bool = False
) -> str:
    """A Set-Cookie value. First-party use is SameSite=Lax; a cookie sync happens in another
    site's page, where only SameSite=None (which browsers allow with Secure only) is sent."""
    same_site = "None" if cross_site and https else "Lax"
    parts = [f"{name}={value}", f"Max-Age={max_age}", "Path=/", f"SameSite={same_site}"]
    if https:
        parts.append("Secure")
    return "; ".join(parts)


def page_message(
    params: dict[str, str],
    cookie_id: str,
    user_agent: str | None,
    *,
    refuses_advertising: bool = False,
) -> dict[str, Any]:
    """The Segment message a pixel hit stands for: a page view, or a track event when the
    tag names one (`event=`). UTM parameters of the page URL become context.campaign; a
    TCF string (`gdpr=1&gdpr_consent=...`, as ad tags pass it) becomes context.tcf, and a
    browser's GPC or DNT signal an advertising refusal in context.consent."""
    url = _text(params.get("url"))
    parts = _split(url)
    context: dict[str, Any] = {
        "library": {"name": "tessera-pixel", "version": "1"},
        "externalIds": [
            {"id": cookie_id, "type": "cookie_id", "collection": "users", "encoding": "none"}
        ],
        "page": {
            key: value
            for key, value in (
                ("url", url),
                ("path", parts.path if parts else None),
                ("referrer", _text(params.get("ref"))),
                ("title", _text(params.get("title"))),
            )
            if value
        },
    }
    if user_agent:
        context["userAgent"] = user_agent[:_MAX_TEXT]
    campaign = {
        field: value
        for key, field in _UTM.items()
        if (value := dict(parse_qsl(parts.query if parts else "")).get(key))
    }
    if campaign:
        context["campaign"] = campaign
    tc_string = _text(params.get("gdpr_consent"))
    if tc_string and params.get("gdpr") != "0":
        context["tcf"] = tc_string
    if refuses_advertising:
        context["consent"] = {"categoryPreferences": {"advertising": False}}
    properties = {key: value for key, value in context["page"].items()}
    properties.update(
        {key[2:]: _text(value) for key, value in params.items() if key.startswith("p.")}
    )
    message: dict[str, Any] = {
        "context": context,
        "properties": properties,
        "messageId": _text(params.get("mid")) or f"px-{uuid.uuid4().hex}",
    }
    event = _text(params.get("event"))
    if event:
        message.update(type="track", event=event)
    else:
        message.update(type="page", name=_text(params.get("title")))
    return message


def sync_message(partner: str, partner_user_id: str, cookie_id: str) -> dict[str, Any]:
    """A cookie sync recorded as an identify that links our cookie id and the partner's id
    (identifier type `sync_<partner>`), so the graph knows both for one browser."""
    return {
        "type": "identify",
        "messageId": f"sync-{partner}-{cookie_id}-{partner_user_id}"[:200],
        "context": {
            "library": {"name": "tessera-sync", "version": "1"},
            "externalIds": [
                {"id": cookie_id, "type": "cookie_id", "encoding": "none"},
                {"id": partner_user_id, "type": partner_type(partner), "encoding": "none"},
            ],
        },
    }


def partner_type(partner: str) -> str:
    return "sync_" + re.sub(r"[^a-z0-9_]", "_", partner.lower())[:34]


def partner_redirect(template: str, cookie_id: str) -> str:
    return template.replace("{cookie_id}", quote(cookie_id, safe=""))


def _split(url: str | None) -> SplitResult | None:
    """The page URL's parts; None when there is no URL or it cannot be split (an unclosed
    IPv6 host `http://[::1`, a host that changes under NFKC): the page is still recorded,
    with its URL as given and no path or campaign."""
    if not url:
        return None
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:_MAX_TEXT] or None
