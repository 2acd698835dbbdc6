"""Each ad platform's rules for matching customer lists, as pure functions.

Google Customer Match and Meta Custom Audiences both take SHA-256 hex digests of normalised
e-mails and phones, but normalise differently (their published formatting guides):

- Google: e-mail lower-cased with all whitespace removed; for gmail.com and googlemail.com
  the dots of the local part and any `+tag` are removed. Phone in E.164 *with* the `+`.
- Meta: e-mail trimmed and lower-cased. Phone as digits with the country code, *without*
  `+` or leading zeros.
- Ours: both get the address identity kept (`identity.identifiers.normalise_email`, Google's
  whitespace rule), so the person exported keeps the e-mail they are known by.
- Both: Unicode NFC before hashing, lower-case hex, and never the hash of an empty value (it
  would match every empty record). Mobile advertising ids (Apple's IDFA, Google's GAID/AAID)
  are sent unhashed, and both are UUIDs (8-4-4-4-12 hex digits): anything else is refused,
  which also keeps a hostile value (`=HYPERLINK(...)`) out of the file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from tessera.identity.identifiers import normalise_email

_GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
#: What a device sends when the user limited ad tracking: it would match every such device.
_NO_AD_ID = "00000000-0000-0000-0000-000000000000"
_AD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def sha256_hex(value: str | None) -> str | None:
    """NFC, then SHA-256 as lower-case hex; None for a missing or blank value."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value)
    if not text.strip():
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def google_email(raw: str | None) -> str | None:
    if raw is None:
        return None
    email, _ = normalise_email(raw)
    if email is None:
        return None
    local, _, domain = email.rpartition("@")
    if domain in _GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def meta_email(raw: str | None) -> str | None:
    if raw is None:
        return None
    return normalise_email(raw)[0]


def google_phone(e164: str | None) -> str | None:
    """From our identifiers, already E.164 (`+33612345678`): kept with its `+`."""
    digits = _digits(e164)
    return f"+{digits}" if digits else None


def meta_phone(e164: str | None) -> str | None:
    """Digits with the country code, no `+` and no leading zeros."""
    digits = _digits(e164)
    return digits.lstrip("0") or None if digits else None


def mobile_ad_id(raw: str | None) -> str | None:
    """IDFA / GAID, unhashed and lower-case; None unless it is a UUID (the form both
    platforms take, e.g. `6d92078a-8246-4ba4-ae5b-76104861e7dc`)."""
    if raw is None:
        return None
    ad_id = raw.strip().lower()
    if not _AD_ID.fullmatch(ad_id) or ad_id == _NO_AD_ID:
        return None
    return ad_id


def _digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())
