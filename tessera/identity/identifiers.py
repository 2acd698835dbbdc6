"""Typed identifiers and their normalisation: the same person written two ways must meet.

Pure functions. `identifiers_of(event)` turns one event-log row into the normalised
identifiers identity resolution works with; junk values (null, test@test.com, the
all-zero advertising id...) never become identifiers.
"""

from __future__ import annotations

import re
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
_CUSTOM_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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
        return any(pattern.search(value) for pattern in self.patterns)


def normalise(kind: str, raw: str, *, region: str | None = None) -> str | None:
    """The canonical form of an identifier value, or None if it is not a usable one.

    - email: trimmed, lower-cased, must look like an address;
    - phone: E.164 via libphonenumber, using `region` for national numbers; invalid
      numbers are not identifiers;
    - advertising_id and device_id: trimmed, lower-cased (IDFA arrives upper-case, GAID
      lower-case: the same id);
    - anything else: trimmed.
    """
    value = raw.strip()
    if not value:
        return None
    if kind == "email":
        value = value.lower()
        return value if _EMAIL.match(value) else None
    if kind == "phone":
        return _e164(value, (region or "").upper() or None)
    if kind in ("advertising_id", "device_id"):
        return value.lower()
    return value


@lru_cache(maxsize=200_000)
def _e164(value: str, region: str | None) -> str | None:
    # libphonenumber takes ~13 µs a call; the same numbers recur, so results are cached.
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_identifier(text: str, *, region: str | None = None) -> Identifier:
    """`email:Jane@X.com ` → Identifier('email', 'jane@x.com'). Raises ValueError."""
    kind, separator, raw = text.partition(":")
    kind = kind.strip().lower()
    if not separator or not raw.strip():
        raise ValueError(f"{text!r} is not TYPE:VALUE (e.g. email:jane@example.com)")
    if kind not in STANDARD_TYPES and not _CUSTOM_TYPE.match(kind):
        raise ValueError(
            f"{kind!r} is not an identifier type; use one of "
            f"{', '.join(STANDARD_TYPES)} or a custom type such as loyalty_id"
        )
    value = normalise(kind, raw, region=region)
    if value is None:
        raise ValueError(f"{raw.strip()!r} is not a valid {kind}")
    return Identifier(kind, value)


def identifiers_of(
    event: dict[str, Any],
    junk: JunkRules,
    default_region: str | None,
    *,
    alias_target: str | None = None,
) -> list[Identifier]:
    """The normalised identifiers one event carries, without junk or duplicates.

    `event` has the event log's identifier columns, plus `country` (a region hint for
    phone numbers, from traits) when known. For an alias, `alias_target` is the type
    its previousId has been resolved to.
    """
    found: dict[Identifier, None] = {}
    region = event.get("country") or default_region
    if isinstance(region, str) and len(region) != 2:
        region = default_region

    def add(kind: str, raw: object) -> None:
        if not isinstance(raw, str) or junk.is_junk(raw.strip()):
            return
        value = normalise(kind, raw, region=region)
        if value is not None and not junk.is_junk(value):
            found[Identifier(kind, value)] = None

    add("user_id", event.get("user_id"))
    add("anonymous_id", event.get("anonymous_id"))
    add("email", event.get("email"))
    add("phone", event.get("phone"))
    add("device_id", event.get("device_id"))
    add("advertising_id", event.get("advertising_id"))
    if alias_target and event.get("previous_id"):
        add(alias_target, event.get("previous_id"))
    external = event.get("external_ids")
    if external:
        for item in orjson.loads(external) if isinstance(external, str) else external:
            kind = str(item.get("type", "")).strip().lower()
            if kind in STANDARD_TYPES or _CUSTOM_TYPE.match(kind):
                add(kind, item.get("id"))
    return list(found)
