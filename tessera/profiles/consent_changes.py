"""Changing a person's consent by hand, and reading their consent history.

An agent's change (on the phone, at the desk) is written to the event log as a track event
"Consent Changed" from the built-in source `tessera-consent`, carrying the purposes in
`context.consent.categoryPreferences` and who and why in its properties. So it merges
into the profile like any consent (latest wins per purpose, `profiles/consent.py`), a
rebuild keeps it, and an erasure of the person removes it with their other events.

The history is read from the person's events: every event that carried consent (Segment's
categoryPreferences, a TCF string, or an agent's change), oldest first.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import orjson
from pydantic import Field

from tessera.errors import InvalidField, NotFound
from tessera.events.contract import Envelope, check_message
from tessera.events.sources import SourceDirectory
from tessera.events.timestamps import micros_iso, now_micros
from tessera.events.writer import EventWriter
from tessera.identity.lookup import identifier_from_text, lookup, member_ids
from tessera.profiles import consent as consent_rule
from tessera.profiles.tcf import purposes_of
from tessera.results import Result
from tessera.settings import Settings
from tessera.store import Store

SOURCE = "tessera-consent"
EVENT = "Consent Changed"
MAX_REASON = 500


class ConsentWriter(Protocol):
    """What a change needs of the running Tessera (the Runtime has it all)."""

    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def sources(self) -> SourceDirectory: ...

    @property
    def writer(self) -> EventWriter: ...


class ConsentRecord(Result):
    """One event that set consent."""

    at: str | None
    seq: int
    via: str = Field(description="'event', 'tcf' or 'agent'")
    source: str
    purposes: dict[str, bool | None]
    actor: str | None = None
    reason: str | None = None


class ConsentState(Result):
    """A person's consent now (per purpose: granted, refused or not said, and whether the
    policy allows it) and how it came to be."""

    profile_id: str
    purposes: dict[str, bool | None]
    allowed: dict[str, bool]
    policies: dict[str, str]
    history: list[ConsentRecord]


class ConsentChanged(Result):
    """What a change wrote."""

    reference: str
    purposes: dict[str, bool]
    actor: str
    reason: str
    seq: int | None


def change(
    running: ConsentWriter, reference: str, purposes: dict[str, bool], actor: str, reason: str
) -> ConsentChanged:
    """Record `actor`'s change of the consent of the person `reference` (TYPE:VALUE).

    Raises:
        InvalidField: an unknown purpose, no purpose, no reason, or a bad identifier.
        NotFound: nobody has this identifier.
    """
    settings = running.settings
    if not purposes:
        raise InvalidField("give at least one purpose to grant or refuse", field="purposes")
    unknown = sorted(set(purposes) - set(settings.consent_purposes))
    if unknown:
        raise InvalidField(
            f"unknown purpose {unknown[0]!r}; the purposes are "
            + ", ".join(settings.consent_purposes),
            field="purposes",
            value=unknown[0],
        )
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidField(
            f"say why in 1 to {MAX_REASON} characters (e.g. 'customer asked on the phone')",
            field="reason",
        )
    identifier = identifier_from_text(reference, settings.default_region)
    # Only a person Tessera knows: a change for an unknown identifier would create one.
    lookup(running.store, reference, settings.default_region)
    message: dict[str, Any] = {
        "type": "track",
        "event": EVENT,
        "messageId": f"consent-{uuid.uuid4().hex}",
        "properties": {"purposes": purposes, "actor": actor, "reason": reason},
        "context": {
            "consent": {"categoryPreferences": dict(purposes)},
            "externalIds": [
                {
                    "id": identifier.value,
                    "type": identifier.type,
                    "collection": "users",
                    "encoding": "none",
                }
            ],
        },
    }
    if identifier.type == "user_id":
        message["userId"] = identifier.value
    elif identifier.type == "anonymous_id":
        message["anonymousId"] = identifier.value
    source = _source(running.sources)
    envelope = Envelope(source.id, source.channel, now_micros(), require_segment_ids=False)
    row = check_message(message, envelope, default_type=None, max_bytes=settings.max_message_bytes)
    running.writer.write([row])
    return ConsentChanged(
        reference=str(identifier), purposes=purposes, actor=actor, reason=reason,
        seq=running.writer.last_seq,
    )  # fmt: skip


def _source(sources: SourceDirectory) -> Any:
    try:
        return sources.get(SOURCE)
    except NotFound:
        return sources.create(SOURCE, "phone").source  # the call centre, mostly


def state(store: Store, settings: Settings, reference: str) -> ConsentState:
    """The consent of the person `reference` now and its history."""
    profile_id = lookup(store, reference, settings.default_region)
    row = store.fetch_one(
        "SELECT consent FROM profile_summaries WHERE profile_id = ?", [profile_id]
    )
    current = orjson.loads(row[0]) if row and row[0] else {}
    policies = settings.consent_policies()
    return ConsentState(
        profile_id=profile_id,
        purposes=consent_rule.answers(current, settings.consent_purposes),
        allowed={p: consent_rule.allows(current, p, policies) for p in settings.consent_purposes},
        policies=policies,
        history=history(store, member_ids(store, profile_id), settings.consent_purposes),
    )


def history(store: Store, members: list[str], purposes: list[str]) -> list[ConsentRecord]:
    """Every event of these profiles that carried consent, oldest first."""
    rows = store.fetch_all(
        "SELECT e.seq, epoch_us(e.timestamp), s.name, e.event, "
        "json_extract(e.payload, '$.context.consent.categoryPreferences')::VARCHAR, "
        "coalesce(json_extract_string(e.payload, '$.context.tcf'), "
        "json_extract_string(e.traits, '$.tcf_consent')), e.properties "
        "FROM event_profiles ep JOIN events e ON e.seq = ep.seq "
        "LEFT JOIN sources s ON s.id = e.source_id "
        "WHERE list_contains(?, ep.profile_id) AND ("
        "json_extract(e.payload, '$.context.consent.categoryPreferences') IS NOT NULL "
        "OR json_extract_string(e.payload, '$.context.tcf') IS NOT NULL "
        "OR json_extract_string(e.traits, '$.tcf_consent') IS NOT NULL) "
        "ORDER BY e.timestamp, e.seq LIMIT 1000",
        [members],
    )
    records = []
    for seq, micros, source, event, preferences, tc_string, properties in rows:
        given = orjson.loads(preferences) if preferences else None
        agent = source == SOURCE and event == EVENT
        extra = orjson.loads(properties) if agent and properties else {}
        if not isinstance(given, dict):
            given = None
        via = "agent" if agent else ("event" if given else "tcf")
        merged = {**(purposes_of(tc_string) or {} if tc_string else {}), **(given or {})}
        records.append(
            ConsentRecord(
                at=micros_iso(micros),
                seq=seq,
                via=via,
                source=source or "?",
                purposes={
                    k: v for k, v in consent_rule.answers(merged, purposes).items() if v is not None
                },
                actor=extra.get("actor"),
                reason=extra.get("reason"),
            )
        )
    return records
