"""Audience files for ad platforms from a segment: Google Customer Match, Meta Custom
Audiences, and OpenRTB-ready segment lists keyed by cookie and mobile ad id.

Only people whose consent allows advertising are exported (`allows_advertising`); the
platform rules live in `platforms.py`. Each export streams rows to a text file and returns
what it did: members, exported, refused for consent, without a usable identifier, and the
advertising ids refused because they are not IDFA/GAID. CSV cells never start like a
spreadsheet formula (`spreadsheet.py`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any, TextIO

import orjson

from tessera import spreadsheet
from tessera.audiences import campaigns, platforms
from tessera.errors import InvalidField
from tessera.profiles import consent as consent_rule
from tessera.results import Result
from tessera.segments import service
from tessera.store import Store

FORMATS = ("google", "google-mobile", "meta", "openrtb")
MEDIA_TYPES = {"google": "text/csv", "google-mobile": "text/csv", "meta": "text/csv",
               "openrtb": "application/x-ndjson"}  # fmt: skip
#: OpenRTB 2.6 `segtax` for the IAB Tech Lab Audience Taxonomy 1.1.
SEGTAX_IAB_AUDIENCE_1_1 = 4
#: Identifier types an OpenRTB bid request can carry for a user: cookies (and ad ids).
_BIDSTREAM_COOKIES = ("cookie_id", "anonymous_id")


@dataclass
class Person:
    profile_id: str
    consent: dict[str, Any]
    identifiers: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: IAB Audience Taxonomy ids of live third-party memberships, by provider
    iab_segments: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


class Exported(Result):
    """What an export wrote: members, those refused for consent or held out, rows."""

    segment: str
    format: str
    members: int
    refused_consent: int
    held_out: int
    exported_profiles: int
    without_identifier: int
    refused_advertising_ids: int
    rows: int
    consent_policy: str


def allows_advertising(consent: dict[str, Any], policy: str) -> bool:
    """Does this consent record allow advertising? (`profiles/consent.py`, the rule
    destinations follow too.)"""
    return consent_rule.allows(consent, "advertising", policy)


def export(store: Store, segment: str, file_format: str, out: TextIO, policy: str) -> Exported:
    """Write the segment's current members to `out` in `file_format` (see FORMATS)."""
    if file_format not in FORMATS:
        raise InvalidField(
            f"export format {file_format!r} must be one of {', '.join(FORMATS)}",
            field="format",
            value=file_format,
        )
    details = service.get(store, segment)
    people = members(store, details["id"])
    allowed = [p for p in people if allows_advertising(p.consent, policy)]
    held = campaigns.holdout_of(store, segment)
    sent = [p for p in allowed if not held or not campaigns.held_out(p.profile_id, *held)]
    tally = _WRITERS[file_format](sent, out, details)
    return Exported(
        segment=segment,
        format=file_format,
        members=len(people),
        refused_consent=len(people) - len(allowed),
        held_out=len(allowed) - len(sent),
        exported_profiles=len(sent) - tally.without,
        without_identifier=tally.without,
        refused_advertising_ids=tally.refused_ad_ids,
        rows=tally.rows,
        consent_policy=policy,
    )


def members(store: Store, segment_id: str) -> list[Person]:
    """The segment's current members with their consent and identifiers."""
    found: dict[str, Person] = {}
    for profile_id, consent in store.fetch_all(
        "SELECT m.profile_id, s.consent FROM segment_members m "
        "JOIN profile_summaries s ON s.profile_id = m.profile_id "
        "WHERE m.segment_id = ? AND m.left_at IS NULL ORDER BY m.profile_id",
        [segment_id],
    ):
        found[profile_id] = Person(profile_id, orjson.loads(consent) if consent else {})
    for profile_id, kind, value in store.fetch_all(
        "SELECT coalesce(p.merged_into, i.profile_id) AS live, i.type, i.value "
        "FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id "
        "WHERE coalesce(p.merged_into, i.profile_id) IN (SELECT profile_id FROM "
        "segment_members WHERE segment_id = ? AND left_at IS NULL) ORDER BY live, i.type, i.value",
        [segment_id],
    ):
        found[profile_id].identifiers[kind].append(value)
    for profile_id, provider, iab_id in store.fetch_all(
        "SELECT DISTINCT coalesce(p.merged_into, i.profile_id) AS live, t.provider, t.segment_id "
        "FROM third_party_memberships t JOIN identities i ON i.type = t.identifier_type "
        "AND i.value = t.identifier_value LEFT JOIN profiles p ON p.profile_id = i.profile_id "
        "WHERE t.taxonomy = 'iab-audience' AND t.expires_at > CAST(now() AS TIMESTAMP) "
        "AND coalesce(p.merged_into, i.profile_id) IN (SELECT profile_id FROM "
        "segment_members WHERE segment_id = ? AND left_at IS NULL)",
        [segment_id],
    ):
        found[profile_id].iab_segments[provider].add(iab_id)
    return list(found.values())


def write_people(
    people: list[Person], file_format: str, out: TextIO, segment: dict[str, Any]
) -> tuple[int, int, int]:
    """The `file_format` writer over people already allowed and not held out: what
    `export` writes after its header. Returns (rows, people without a usable identifier,
    refused advertising ids). Another engine writes the same bytes with it
    (`tessera/spark/exports.py`, a person at a time)."""
    tally = _WRITERS[file_format](people, out, segment)
    return tally.rows, tally.without, tally.refused_ad_ids


@dataclass
class _Tally:
    """What a writer did: rows written, people with no usable identifier, and the
    advertising ids refused because they are not IDFA/GAID (UUIDs)."""

    rows: int = 0
    without: int = 0
    refused_ad_ids: int = 0

    def ad_ids(self, values: list[str]) -> list[str]:
        """The person's usable ad ids; the others are counted, never silently dropped."""
        checked = [platforms.mobile_ad_id(value) for value in values]
        self.refused_ad_ids += checked.count(None)
        return sorted({ad_id for ad_id in checked if ad_id})


def _google(people: list[Person], out: TextIO, _segment: dict[str, Any]) -> _Tally:
    """Customer Match contact file: Email, Phone (SHA-256 of Google's normalisation)."""
    table = spreadsheet.writer(out)
    table.writerow(["Email", "Phone"])
    tally = _Tally()
    for person in people:
        emails = _hashed(person.identifiers.get("email", []), platforms.google_email)
        phones = _hashed(person.identifiers.get("phone", []), platforms.google_phone)
        tally.without += not (emails or phones)
        for row in zip_longest(emails, phones, fillvalue=""):
            table.writerow(row)
            tally.rows += 1
    return tally


def _meta(people: list[Person], out: TextIO, _segment: dict[str, Any]) -> _Tally:
    """Custom Audience file: email, phone hashed with Meta's normalisation; madid as is."""
    table = spreadsheet.writer(out)
    table.writerow(["email", "phone", "madid"])
    tally = _Tally()
    for person in people:
        emails = _hashed(person.identifiers.get("email", []), platforms.meta_email)
        phones = _hashed(person.identifiers.get("phone", []), platforms.meta_phone)
        madids = tally.ad_ids(person.identifiers.get("advertising_id", []))
        tally.without += not (emails or phones or madids)
        for row in zip_longest(emails, phones, madids, fillvalue=""):
            table.writerow(row)
            tally.rows += 1
    return tally


def _google_mobile(people: list[Person], out: TextIO, _segment: dict[str, Any]) -> _Tally:
    """Customer Match mobile-id file (Google keeps these apart from contact info)."""
    table = spreadsheet.writer(out)
    table.writerow(["Mobile Device ID"])
    tally = _Tally()
    for person in people:
        ids = tally.ad_ids(person.identifiers.get("advertising_id", []))
        tally.without += not ids
        for ad_id in ids:
            table.writerow([ad_id])
            tally.rows += 1
    return tally


def _openrtb(people: list[Person], out: TextIO, segment: dict[str, Any]) -> _Tally:
    """One JSON line per cookie or mobile ad id: the OpenRTB 2.6 `user.data` objects to
    attach to a bid request for it: this segment, and the person's IAB Audience Taxonomy
    segments from each data provider with `ext.segtax` 4."""
    tally = _Tally()
    first_party = {"id": "tessera", "name": "tessera",
                   "segment": [{"id": segment["id"], "name": segment["name"]}]}  # fmt: skip
    for person in people:
        ids = [(kind, value) for kind in _BIDSTREAM_COOKIES
               for value in person.identifiers.get(kind, [])]  # fmt: skip
        ad_ids = tally.ad_ids(person.identifiers.get("advertising_id", []))
        ids += [("advertising_id", value) for value in ad_ids]
        tally.without += not ids
        data = [first_party] + [
            {"name": provider, "segment": [{"id": i} for i in sorted(ids_)],
             "ext": {"segtax": SEGTAX_IAB_AUDIENCE_1_1}}
            for provider, ids_ in sorted(person.iab_segments.items())
        ]  # fmt: skip
        for kind, value in ids:
            line = {"id": value, "id_type": kind, "user": {"data": data}}
            out.write(orjson.dumps(line).decode() + "\n")
            tally.rows += 1
    return tally


def _hashed(values: list[str], rule: Any) -> list[str]:
    digests = (platforms.sha256_hex(rule(value)) for value in values)
    return sorted({d for d in digests if d})


_WRITERS = {"google": _google, "google-mobile": _google_mobile, "meta": _meta,
            "openrtb": _openrtb}  # fmt: skip
