"""Masking personal identifiers for roles that must not see them (`roles.SEES_IDENTIFIERS`).

Done on the server, on what leaves it: the admin API's JSON and the console's HTML for
such a role pass through `mask_json` / `mask_html` (`tessera/app.py`), so no page or
endpoint, old or new, can show an e-mail or a phone number in clear by forgetting to.
`jane.doe@gmail.com` becomes `j•••@gmail.com`; `+447700900123` becomes `+44•••••••123`.
"""

from __future__ import annotations

import re
from typing import Any

# The local part takes every character RFC 5322 allows unquoted, so an odd address
# ("=@example.com") is masked too; the first character is kept as a hint.
_EMAIL = re.compile(r"([\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]*@([\w.-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(?<![\w/.#-])\+(\d{2})\d{4,10}(\d{3})(?![\w/-])")
#: JSON keys whose string values are personal identifiers whatever they look like.
IDENTIFIER_KEYS = frozenset(
    {"email", "phone", "user_id", "userId", "advertising_id", "device_id"}
)  # fmt: skip
#: Keys that are personal inside a person's traits (elsewhere "name" names a segment).
TRAIT_KEYS = frozenset(
    {"name", "first_name", "last_name", "firstName", "lastName", "address", "street",
     "birthday", "postal_code", "zip"}
)  # fmt: skip
_TRAIT_HOLDERS = frozenset({"traits", "trait_sources", "context_traits"})


def mask_email(value: str) -> str:
    return _EMAIL.sub(lambda m: f"{m.group(1)}•••@{m.group(2)}", value)


def mask_text(text: str) -> str:
    """Every e-mail address and international phone number in `text`, masked."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}•••@{m.group(2)}", text)
    return _PHONE.sub(lambda m: f"+{m.group(1)}•••••••{m.group(2)}", text)


def mask_value(value: str) -> str:
    """A value under an identifier key: e-mails and phones as above, anything else kept
    to its first character."""
    masked = mask_text(value)
    if masked != value:
        return masked
    return value[:1] + "•••" if value else value


def mask_json(document: Any, key: str | None = None, parent: str | None = None) -> Any:
    """`document` with identifiers masked: values under IDENTIFIER_KEYS (and TRAIT_KEYS in
    traits), `TYPE:VALUE` references of those types, and any e-mail or phone inside any
    string."""
    if isinstance(document, dict):
        if key in _TRAIT_HOLDERS:
            return {
                k: _mask_all(v) if k in TRAIT_KEYS else mask_json(v, k, key)
                for k, v in document.items()
            }
        masked = {k: mask_json(v, k, key) for k, v in document.items()}
        if isinstance(masked.get("type"), str) and masked["type"] in IDENTIFIER_KEYS and \
                isinstance(masked.get("value"), str):  # fmt: skip
            masked["value"] = mask_value(document["value"])
        return masked
    if isinstance(document, list):
        return [mask_json(item, key, parent) for item in document]
    if isinstance(document, str):
        if key in IDENTIFIER_KEYS:
            return mask_value(document)
        kind, sep, rest = document.partition(":")
        if sep and kind in IDENTIFIER_KEYS and rest:
            return f"{kind}:{mask_value(rest)}"
        return mask_text(document)
    return document


def _mask_all(document: Any) -> Any:
    """Every string inside `document` kept to its first character (a personal trait, or
    its sources' record of it)."""
    if isinstance(document, dict):
        return {k: _mask_all(v) if k in ("value", "first", "last") else v
                for k, v in document.items()}  # fmt: skip
    if isinstance(document, list):
        return [_mask_all(item) for item in document]
    return mask_value(document) if isinstance(document, str) else document


def mask_html(html: str) -> str:
    """A rendered page with every e-mail and phone number masked, in text and attributes
    alike (a link to /profiles/email:jane@... included)."""
    return mask_text(html.replace("%40", "@"))
