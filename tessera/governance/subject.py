"""Who a request is about: the profiles an identifier belongs to through the identity
graph, every identifier they hold, their events, and the byte strings ("needles") that
name them in the log, the tables and the files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tessera.errors import NotFound
from tessera.identity.identifiers import Identifier, normalise
from tessera.identity.lookup import find_profile, member_ids
from tessera.store import Store

#: the events table's identifier columns, raw as sent
IDENTIFIER_COLUMNS = (
    "user_id",
    "anonymous_id",
    "previous_id",
    "email",
    "phone",
    "device_id",
    "advertising_id",
)
#: shorter values are matched in identifier columns only, never as bytes in files: a
#: user id `42` would otherwise match every file
MIN_NEEDLE = 6


@dataclass(frozen=True, slots=True)
class Subject:
    """The person a request names, as found in the store."""

    identifier: Identifier
    profile_id: str | None
    profile_ids: list[str]
    identifiers: list[Identifier]
    seqs: list[int]
    #: every value that names them, raw (as sent) and normalised
    values: list[str]

    @property
    def needles(self) -> list[str]:
        """Values to look for as bytes (lower-cased), with the SHA-256 hex of e-mails and
        phones (hashed audiences and exports carry those)."""
        found = {v.strip().lower() for v in self.values if len(v.strip()) >= MIN_NEEDLE}
        for identifier in self.identifiers:
            if identifier.type in ("email", "phone"):
                found.add(hashlib.sha256(identifier.value.encode()).hexdigest())
        return sorted(found)


def find(store: Store, identifier: Identifier, region: str | None = None) -> Subject:
    """The subject of `identifier`; a person no profile holds is the identifier alone (it
    may still sit in the dead letters, the files or a third-party feed)."""
    try:
        profile_id: str | None = find_profile(store, identifier)
    except NotFound:
        profile_id = None
    members = member_ids(store, profile_id) if profile_id is not None else []
    identifiers = {identifier}
    if members:
        for kind, value in store.fetch_all(
            "SELECT type, value FROM identities WHERE profile_id IN (SELECT unnest(?))", [members]
        ):
            identifiers.add(Identifier(kind, value))
    seqs = (
        [
            r[0]
            for r in store.fetch_all(
                "SELECT DISTINCT seq FROM event_profiles WHERE profile_id IN (SELECT unnest(?)) "
                "ORDER BY seq",
                [members],
            )
        ]
        if members
        else []
    )
    known = {i.value for i in identifiers}
    values = set(known)
    if seqs:
        # The raw spellings of their identifiers as sent (`Jane@X.com `), and only those: a
        # junk value in their events (`unknown`) names nobody and must not be erased.
        columns = ", ".join(IDENTIFIER_COLUMNS)
        for row in store.fetch_all(
            f"SELECT DISTINCT {columns} FROM events WHERE seq IN (SELECT unnest(?))", [seqs]
        ):
            for column, raw in zip(IDENTIFIER_COLUMNS, row, strict=True):
                if raw and _normalised(column, str(raw), region) in known:
                    values.add(str(raw))
    return Subject(identifier, profile_id, members, sorted(identifiers), seqs, sorted(values))


def _normalised(column: str, raw: str, region: str | None) -> str | None:
    kind = "anonymous_id" if column == "previous_id" else column
    return normalise(kind, raw, region=region)
