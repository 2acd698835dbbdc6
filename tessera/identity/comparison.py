"""The record a profile is compared by: its name, address, postcode, date of birth, e-mail and
phone, normalised so that the same person written two ways compares equal or close.

Pure: `comparison_record(profile_id, traits, identifiers)` takes a profile's latest traits
(any of the usual spellings: `firstName`, `first_name`, `name`, `address.postalCode`, ...)
and identifiers and returns the flat record the probabilistic matcher (`matching.py`)
compares with Fellegi-Sunter. Names lose case and accents and carry the names they may be
nicknames of (`Nico` -> `nicolas`, `Bill` -> `william`); dates are read ISO or day
first; postcodes lose spaces; street abbreviations are spelled out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from typing import Any

from tessera.identity.identifiers import Identifier

#: Letters NFKD does not take apart.
_FOLD = str.maketrans({"ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ı": "i"})
_NOT_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
#: Diminutives the English list of the `nicknames` package lacks: French, German and Spanish.
LOCAL_NICKNAMES = {
    "nico": "nicolas", "matt": "mathieu", "mat": "mathieu", "cami": "camille",
    "manu": "emmanuel", "seb": "sebastien", "jb": "jean baptiste", "flo": "florence",
    "steph": "stephane", "val": "valerie", "isa": "isabelle", "babette": "elisabeth",
    "lulu": "lucie", "jojo": "joseph", "fanfan": "francois", "doudou": "edouard",
    "javi": "javier", "paco": "francisco", "pepe": "jose", "lola": "dolores",
    "nacho": "ignacio", "lupe": "guadalupe", "chema": "jose maria", "alvarito": "alvaro",
    "sepp": "josef", "hansi": "hans", "uli": "ulrich", "basti": "sebastian",
    "steffi": "stefanie", "olly": "oliver", "emmy": "emily", "luc": "lucas",
    "luke": "lukas", "sophy": "sophie", "tom": "thomas",
}  # fmt: skip
#: Street words written short, spelled out (after folding).
_STREET_WORDS = {
    "r": "rue", "av": "avenue", "ave": "avenue", "bd": "boulevard", "bld": "boulevard",
    "pl": "place", "rd": "road", "st": "street", "ln": "lane", "str": "strasse",
    "c": "calle", "avda": "avenida",
}  # fmt: skip
_TRAIT_KEYS = {
    "first_name": ("first_name", "firstName", "firstname", "given_name", "givenName"),
    "last_name": ("last_name", "lastName", "lastname", "surname", "family_name", "familyName"),
    "name": ("name", "full_name", "fullName"),
    "street": ("street", "address", "address_line_1", "address.street", "address.line1"),
    "postcode": ("postcode", "postal_code", "postalCode", "zip", "zip_code",
                 "address.postalCode", "address.postal_code", "address.zip"),
    "city": ("city", "address.city"),
    "birth_date": ("birthday", "birth_date", "date_of_birth", "dob", "birthDate"),
}  # fmt: skip
#: The fields the matcher compares, in order.
FIELDS = ("first_name", "last_name", "name_key", "birth_date", "postcode", "street", "city",
          "email", "email_user", "phone")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ComparisonRecord:
    """One profile as the matcher compares it; None where the profile does not say."""

    unique_id: str
    first_name: str | None
    #: the first name and the names it may be a nickname of (or have as nicknames)
    first_name_forms: tuple[str, ...] | None
    last_name: str | None
    #: the name's words sorted: the same for "Jon Smith" and "SMITH JON"
    name_key: str | None
    birth_date: str | None
    postcode: str | None
    street: str | None
    city: str | None
    email: str | None
    email_user: str | None
    phone: str | None
    #: the unique identifiers (types limited to one per profile) as `type:value`, sorted:
    #: two profiles with different values of one type are never a match
    unique_ids: tuple[str, ...] = ()
    #: the profile's highest-priority identifier: how a decision names it for good
    anchor: str = ""

    def as_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in self.__slots__}
        row["unique_ids"] = list(self.unique_ids)
        row["first_name_forms"] = list(self.first_name_forms) if self.first_name_forms else None
        return row

    def known_fields(self) -> int:
        return sum(getattr(self, f) is not None for f in FIELDS if f != "name_key")


@lru_cache(maxsize=1 << 16)  # names, streets and dates repeat
def fold(text: str) -> str:
    """Lower case, no accents, letters and digits only, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", plain)).strip()


@cache
def _namer() -> Any:
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=1 << 16)
def first_name_forms(name: str) -> tuple[str, ...]:
    """The name and every name it may be a nickname of, or that may be a nickname of it
    (`bill` -> bill, william, robert, ...; `nico` -> nico, nicolas): two first names are a
    nickname of each other when their forms meet. English from the `nicknames` package,
    French, German and Spanish from LOCAL_NICKNAMES."""
    folded = fold(name)
    if not folded:
        return ()
    forms = {folded}
    if folded in LOCAL_NICKNAMES:
        forms.add(LOCAL_NICKNAMES[folded])
    forms.update(nickname for nickname, full in LOCAL_NICKNAMES.items() if full == folded)
    namer = _namer()
    forms.update(namer.canonicals_of(folded))
    forms.update(namer.nicknames_of(folded))
    return tuple(sorted(forms))


@lru_cache(maxsize=1 << 16)
def birth_date(text: str) -> str | None:
    """A date of birth as ISO text: read as ISO (1980-12-31, 19801231), or day first
    (31/12/1980, 31.12.1980), as Europeans write it; None when it is not a date."""
    text = text.strip()
    if len(text) == 8 and text.isdigit():  # 19801231, as registries and FEBRL write it
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    parts = [p for p in re.split(r"[-/. ]", text) if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    if len(parts[0]) == 4:
        year, month, day = (int(p) for p in parts)
    elif len(parts[2]) == 4:
        day, month, year = (int(p) for p in parts)
    else:
        return None
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


@lru_cache(maxsize=1 << 16)
def postcode(text: str) -> str | None:
    value = re.sub(r"\s+", "", text).upper()
    return value or None


@lru_cache(maxsize=1 << 16)
def street(text: str) -> str | None:
    words = [_STREET_WORDS.get(word, word) for word in fold(text).split()]
    return " ".join(words) or None


def _trait(traits: Mapping[str, Any], field: str) -> str | None:
    for key in _TRAIT_KEYS[field]:
        value: Any = traits
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _names(traits: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(first, last) folded; a full `name` is split at its first
    space (its order is unknown: the matcher also compares the names swapped)."""
    first, last = _trait(traits, "first_name"), _trait(traits, "last_name")
    full = _trait(traits, "name")
    if (first is None or last is None) and full:
        words = fold(full).split()
        if len(words) >= 2:
            first, last = first or words[0], last or " ".join(words[1:])
        elif words and first is None and last is None:
            last = words[0]
    first_folded = fold(first) if first else ""
    return first_folded or None, (fold(last) if last else None) or None


def comparison_record(
    profile_id: str,
    traits: Mapping[str, Any],
    identifiers: Iterable[Identifier],
    unique_types: Iterable[str] = (),
    anchor: str = "",
) -> ComparisonRecord:
    """The record a profile is compared by, from its traits and identifiers (already
    normalised: the first e-mail and phone it holds are compared)."""
    held = list(identifiers)
    unique = set(unique_types)
    first, last = _names(traits)
    email = next((i.value for i in held if i.type == "email"), None)
    phone = next((i.value for i in held if i.type == "phone"), None)
    raw_date = _trait(traits, "birth_date")
    raw_postcode, raw_street = _trait(traits, "postcode"), _trait(traits, "street")
    raw_city = _trait(traits, "city")
    words = sorted(f"{first or ''} {last or ''}".split())
    return ComparisonRecord(
        unique_id=profile_id,
        first_name=first,
        first_name_forms=first_name_forms(first) or None if first else None,
        last_name=last,
        name_key=" ".join(words) if len(words) >= 2 else None,
        birth_date=birth_date(raw_date) if raw_date else None,
        postcode=postcode(raw_postcode) if raw_postcode else None,
        street=street(raw_street) if raw_street else None,
        city=fold(raw_city) or None if raw_city else None,
        email=email,
        email_user=email.partition("@")[0] if email else None,
        # the national significant number: the same line with or without its country code
        phone=phone[-9:] if phone else None,
        unique_ids=tuple(sorted(str(i) for i in held if i.type in unique)),
        anchor=anchor,
    )


def conflicting_unique_ids(first: Iterable[str], second: Iterable[str]) -> str | None:
    """The identifier type two profiles hold different values of, among the types a profile
    may hold only one of (two user ids): such profiles are never one person."""
    mine: dict[str, set[str]] = {}
    for text in first:
        kind, _, value = text.partition(":")
        mine.setdefault(kind, set()).add(value)
    for text in second:
        kind, _, value = text.partition(":")
        if kind in mine and value not in mine[kind]:
            return kind
    return None
