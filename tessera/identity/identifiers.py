"""Typed identifiers and their normalisation: the same person written two ways must meet.

Pure functions. `read_identifiers(event)` turns one event-log row into the normalised
identifiers identity resolution works with, and the values that could not be one, each with
its reason (the pipeline records them in the ledger: nothing is dropped without a trace).
Junk values (null, test@test.com, the all-zero advertising id...) are never identifiers;
they are placeholders by policy, not mistakes, so they are not recorded.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
import phonenumbers

#: The built-in identifier types. Any other name seen in context.externalIds (or an
#: import mapping) is a custom type: loyalty_id, crm_id, ...
STANDARD_TYPES = ("user_id", "anonymous_id", "email", "phone", "device_id", "advertising_id",
                  "cookie_id")  # fmt: skip
#: Identifier types of a browser or device: a profile with only these (and partners'
#: synced ids, SYNC_PREFIX*) is anonymous. The `anonymous` segment keyword, lookalike
#: populations and the anonymous-profile purge all read this one definition.
ANONYMOUS_TYPES = frozenset({"anonymous_id", "cookie_id", "device_id", "advertising_id"})
#: Partners' synced ids (`sync_<partner>`) are anonymous too.
SYNC_PREFIX = "sync_"


def anonymous_types_sql() -> str:
    """ANONYMOUS_TYPES as a SQL tuple literal, `('advertising_id', ...)`, in sorted order.

    Safe as text: the names are our own constants (lower-case letters and '_'), never a
    user's value."""
    return "(" + ", ".join(f"'{kind}'" for kind in sorted(ANONYMOUS_TYPES)) + ")"


_CUSTOM_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TYPE_SEPARATORS = re.compile(r"[\s.\-]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Whitespace anywhere in an address, and the invisible characters copy-paste brings along
# (zero-width space and joiners, the byte-order mark): Google's Customer Match rule removes
# all whitespace from e-mails before matching, so we do too.
_EMAIL_NOISE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")
ZERO_AD_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_JUNK = ("null", "undefined", "none", "nil", "nan", "0", "-1", "unknown", "n/a", "na",
                "anonymous", "test@test.com", "test@example.com", "noemail@noemail.com",
                ZERO_AD_ID)  # fmt: skip


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """A normalised identifier, written `type:value` (e.g. `email:jane@x.com`)."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True)
class JunkRules:
    """Values that must never link people: placeholders, test data, shared numbers."""

    values: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_JUNK))
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def build(cls, extra_values: Iterable[str] = (), patterns: Iterable[str] = ()) -> JunkRules:
        values = {v.strip().lower() for v in (*DEFAULT_JUNK, *extra_values)}
        return cls(frozenset(values), tuple(re.compile(p, re.IGNORECASE) for p in patterns))

    def is_junk(self, value: str) -> bool:
        if value.lower() in self.values:
            return True
        return bool(self.patterns) and any(pattern.search(value) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class Dropped:
    """A value sent as an identifier that cannot be one, and why. The value itself is
    kept only masked, with a fingerprint (SHA-256 of the trimmed value, 16 hex digits) to
    find it again without storing it twice."""

    type: str
    masked: str
    fingerprint: str
    reason: str


def normalise(kind: str, raw: str, *, region: str | None = None) -> str | None:
    """The canonical form of an identifier value, or None if it is not a usable one.

    - email: NFC, every whitespace removed (Google's rule: `Jean.Dupont @Example.com` is
      `jean.dupont@example.com`), lower-cased; must look like an address;
    - phone: E.164 via libphonenumber, using `region` for national numbers. A number that
      parses and has a possible length is kept even when libphonenumber's metadata does
      not know its range (not *valid*): new ranges open faster than the metadata follows;
    - advertising_id and device_id: trimmed, lower-cased (IDFA arrives upper-case, GAID
      lower-case: the same id);
    - anything else: trimmed.
    """
    return checked(kind, raw, region=region)[0]


def checked(kind: str, raw: str, *, region: str | None = None) -> tuple[str | None, str | None]:
    """`(canonical value, None)`, or `(None, why it cannot be an identifier)`."""
    value = raw.strip()
    if not value:
        return None, "empty"
    if kind == "email":
        return normalise_email(value)
    if kind == "phone":
        return _e164(value, (region or "").upper() or None)
    if kind in ("advertising_id", "device_id"):
        return value.lower(), None
    return value, None


def normalise_email(raw: str) -> tuple[str | None, str | None]:
    """An e-mail as every platform matches it: NFC, no whitespace at all, lower-case.
    Shared by identity and the audience exports, so an exported person keeps the address
    identity kept."""
    value = unicodedata.normalize("NFC", _EMAIL_NOISE.sub("", raw).lower())
    if _EMAIL.match(value):
        return value, None
    return None, "not an e-mail address (needs one @ and a domain with a dot)"


_PHONE_LENGTH = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "not a possible length",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "an unknown country code",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}


@lru_cache(maxsize=200_000)
def _e164(value: str, region: str | None) -> tuple[str | None, str | None]:
    # libphonenumber takes ~13 µs a call; the same numbers recur, so results are cached.
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as e:
        if e.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            if not value.lstrip().startswith("+") and region is None:
                return None, (
                    "a national number without a country: send it as +CC..., or the "
                    "country in traits.country, or set TESSERA_DEFAULT_REGION"
                )
            return None, "not a phone number: unknown country code"
        return None, "not a phone number"
    verdict = phonenumbers.is_possible_number_with_reason(number)
    if verdict != phonenumbers.ValidationResult.IS_POSSIBLE:
        length = _PHONE_LENGTH.get(verdict, "not a possible number")
        return None, f"not a possible phone number for +{number.country_code} ({length})"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # A kept value must read back as itself, or one person's number would be two
    # identifiers. Runs of leading zeros (hypothesis found +54000000000000) lose a zero
    # at each parse: such digits are no phone number anyone dials.
    again = phonenumbers.parse(e164, None)
    if phonenumbers.format_number(again, phonenumbers.PhoneNumberFormat.E164) != e164:
        return None, f"not a phone number for +{number.country_code} (leading zeros)"
    return e164, None


def type_name(raw: str) -> str:
    """An identifier type as written by people (`Loyalty ID`, `crm-id`) in lower_snake
    form (`loyalty_id`, `crm_id`)."""
    return _TYPE_SEPARATORS.sub("_", raw.strip().lower()).strip("_")


def mask(value: str) -> str:
    """Enough of a value to recognise it, not to read it: `jean.dupont@` → `je…t@`."""
    text = value.strip()
    if len(text) <= 4:
        return "…"
    keep = 2 if len(text) >= 8 else 1
    return f"{text[:keep]}…{text[-keep:]}"


def fingerprint(value: str) -> str:
    """SHA-256 of the trimmed value, 16 hex digits: finds a dropped value again."""
    return hashlib.sha256(value.strip().encode()).hexdigest()[:16]


def parse_identifier(text: str, *, region: str | None = None) -> Identifier:
    """`email:Jane@X.com ` → Identifier('email', 'jane@x.com'). Raises ValueError."""
    kind, separator, raw = text.partition(":")
    kind = type_name(kind)
    if not separator or not raw.strip():
        raise ValueError(f"{text!r} is not TYPE:VALUE (e.g. email:jane@example.com)")
    if kind not in STANDARD_TYPES and not _CUSTOM_TYPE.match(kind):
        raise ValueError(
            f"{kind!r} is not an identifier type; use one of "
            f"{', '.join(STANDARD_TYPES)} or a custom type such as loyalty_id"
        )
    value, reason = checked(kind, raw, region=region)
    if value is None:
        raise ValueError(f"{raw.strip()!r} is not a valid {kind}: {reason}")
    return Identifier(kind, value)


@dataclass(frozen=True, slots=True)
class EventIdentifiers:
    """What one event carries: the identifiers, and the values refused as identifiers."""

    identifiers: list[Identifier]
    dropped: list[Dropped]


def identifiers_of(
    event: dict[str, Any],
    junk: JunkRules,
    default_region: str | None,
    *,
    alias_target: str | None = None,
) -> list[Identifier]:
    """The normalised identifiers one event carries, without junk or duplicates."""
    return read_identifiers(event, junk, default_region, alias_target=alias_target).identifiers


#: the event log's identifier columns, each named after the identifier type it holds
_COLUMN_TYPES = ("user_id", "anonymous_id", "email", "phone", "device_id", "advertising_id")


def read_identifiers(
    event: dict[str, Any],
    junk: JunkRules,
    default_region: str | None,
    *,
    alias_target: str | None = None,
) -> EventIdentifiers:
    """The normalised identifiers one event carries, without junk or duplicates, and the
    values that could not be identifiers (a malformed e-mail, an impossible phone, an
    external id whose type is not a name) with the reason.

    `event` has the event log's identifier columns, plus `country` (a region hint for
    phone numbers, from traits) when known. For an alias, `alias_target` is the type
    its previousId has been resolved to.
    """
    found: dict[Identifier, None] = {}
    dropped: dict[tuple[str, str], Dropped] = {}
    region = event.get("country") or default_region
    if isinstance(region, str) and len(region) != 2:
        region = default_region

    def add(kind: str, raw: object) -> None:
        if not isinstance(raw, str):
            return
        stripped = raw.strip()
        if junk.is_junk(stripped):
            return
        value, reason = checked(kind, raw, region=region)
        if value is None:
            if reason != "empty":
                refuse(kind, raw, reason or "not usable")
        # (the same text as the one just checked is not junk either)
        elif value == stripped or not junk.is_junk(value):
            found[Identifier(kind, value)] = None

    def refuse(kind: str, raw: str, reason: str) -> None:
        entry = Dropped(kind, mask(raw), fingerprint(raw), reason)
        dropped.setdefault((kind, entry.fingerprint), entry)

    for kind in _COLUMN_TYPES:  # most events carry one or two of them
        raw = event.get(kind)
        if raw is not None:
            add(kind, raw)
    if alias_target and event.get("previous_id"):
        add(alias_target, event.get("previous_id"))
    external = event.get("external_ids")
    if external:
        for item in orjson.loads(external) if isinstance(external, str) else external:
            kind = type_name(str(item.get("type", "")))
            if kind in STANDARD_TYPES or _CUSTOM_TYPE.match(kind):
                add(kind, item.get("id"))
            elif isinstance(item.get("id"), str) and item["id"].strip():
                refuse(
                    "external_id",
                    item["id"],
                    f"externalIds type {kind[:40]!r} is not an "
                    "identifier type: use lower-case letters, digits and _ (e.g. loyalty_id)",
                )
    return EventIdentifiers(list(found), list(dropped.values()))
