"""Access and suppression requests: what Tessera holds about a person, and keeping a
person out from now on without erasing what is held."""

from __future__ import annotations

from typing import Any

import orjson

from tessera.context import Context
from tessera.errors import NotFound
from tessera.events.timestamps import iso_utc, utc_now
from tessera.governance import requests, suppressed
from tessera.governance.requests import PrivacyRequest, receipt
from tessera.governance.subject import Subject, find
from tessera.governance.suppression import key
from tessera.identity.lookup import identifier_from_text
from tessera.profiles.view import profile_view
from tessera.results import Result
from tessera.store import Store


class AccessReport(Result):
    """Everything held about one person (GDPR art. 15): the request, and each store's part."""

    request: PrivacyRequest
    profile_ids: list[str]
    identifiers: list[dict[str, str]]
    profile: dict[str, Any] | None
    consent_history: list[dict[str, Any]]
    events: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    third_party_memberships: list[dict[str, Any]]
    lookalike_scores: list[dict[str, Any]]
    destinations: list[dict[str, Any]]
    dead_letters: int
    other_tables: dict[str, int]


def access(context: Context, text: str) -> AccessReport:
    """The access report of the person `text` (`TYPE:VALUE`) names, recorded as a request.

    Raises:
        InvalidField: `text` is not an identifier.
    """
    store, settings = context.store, context.settings
    identifier = identifier_from_text(text, settings.default_region)
    salt = suppressed.salt(store)
    request_id, attempt = requests.begin(store, salt, "access", identifier, utc_now())
    subject = find(store, identifier, settings.default_region)
    profile = None
    if subject.profile_id is not None:
        try:
            profile = profile_view(store, subject.profile_id, limit=0)
        except NotFound:
            profile = None
    events = _events(store, subject)
    report_parts = {
        "segments": _segments(store, subject),
        "third_party_memberships": _third_party(store, subject),
        "lookalike_scores": _lookalikes(store, subject),
        "destinations": _destinations(store, subject),
    }
    dead = store.fetch_one(
        "SELECT count(*) FROM rejected WHERE EXISTS (SELECT 1 FROM (SELECT unnest(?) AS n) "
        "WHERE contains(lower(coalesce(payload, '')), n))",
        [subject.needles],
    )
    receipts = [
        receipt("events", "table", len(events), utc_now(), detail="read"),
        *(
            receipt(name.replace("_", " "), "table", len(rows), utc_now(), detail="read")
            for name, rows in report_parts.items()
        ),
    ]
    requests.finish(store, request_id, attempt, receipts, utc_now())
    filed = requests.get(store, request_id)
    requests.audit_request(context, filed)
    return AccessReport(
        request=filed,
        profile_ids=subject.profile_ids,
        identifiers=[{"type": i.type, "value": i.value} for i in subject.identifiers],
        profile=_plain(profile),
        consent_history=_consent_history(events),
        events=events,
        dead_letters=int(dead[0]) if dead else 0,
        other_tables=_other_tables(store, subject),
        **report_parts,
    )


def suppress(context: Context, text: str) -> PrivacyRequest:
    """Keep the person `text` names out from now on: their identifiers (all those of their
    profile) go to the suppression list as salted hashes; what is held stays (erase it
    with `erase`).

    Raises:
        InvalidField: `text` is not an identifier.
    """
    store, settings = context.store, context.settings
    identifier = identifier_from_text(text, settings.default_region)
    salt = suppressed.salt(store)
    request_id, attempt = requests.begin(store, salt, "suppress", identifier, utc_now())
    subject = find(store, identifier, settings.default_region)
    entries = sorted({(key(salt, value), "suppressed") for value in subject.values})
    added = suppressed.add(store, entries, request_id, utc_now())
    suppressed.publish(store, settings.suppression_path)
    receipts = [
        receipt(
            "suppression list",
            "suppression",
            added,
            utc_now(),
            detail=f"{len(entries)} identifier values kept as salted hashes; new events "
            "naming them are dropped at ingest",
        )
    ]
    requests.finish(store, request_id, attempt, receipts, utc_now())
    filed = requests.get(store, request_id)
    requests.audit_request(context, filed)
    return filed


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(orjson.dumps(value, default=str))


def _events(store: Store, subject: Subject) -> list[dict[str, Any]]:
    if not subject.seqs:
        return []
    return [
        {"seq": seq, "received_at": iso_utc(received), "payload": orjson.loads(payload)}
        for seq, received, payload in store.fetch_all(
            "SELECT seq, received_at, payload FROM events WHERE seq IN (SELECT unnest(?)) "
            "ORDER BY seq",
            [subject.seqs],
        )
    ]


def _consent_history(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    history = []
    for event in events:
        payload = event["payload"]
        context = payload.get("context") if isinstance(payload, dict) else None
        consent = context.get("consent") if isinstance(context, dict) else None
        if isinstance(consent, dict) and consent:
            history.append(
                {
                    "seq": event["seq"],
                    "at": payload.get("timestamp") or event["received_at"],
                    "consent": consent,
                }
            )
    return history


def _segments(store: Store, subject: Subject) -> list[dict[str, Any]]:
    return [
        {"segment": name, "entered_at": iso_utc(entered), "left_at": iso_utc(left)}
        for name, entered, left in store.fetch_all(
            "SELECT s.name, m.entered_at, m.left_at FROM segment_members m "
            "JOIN segments s ON s.id = m.segment_id WHERE m.profile_id IN (SELECT unnest(?)) "
            "ORDER BY m.entered_at, s.name",
            [subject.profile_ids],
        )
    ]


def _third_party(store: Store, subject: Subject) -> list[dict[str, Any]]:
    values = sorted({v.strip().lower() for v in subject.values} | set(subject.needles))
    return [
        {
            "provider": provider,
            "taxonomy": taxonomy,
            "segment_id": segment_id,
            "identifier_type": kind,
            "received_at": iso_utc(received),
            "expires_at": iso_utc(expires),
        }
        for provider, taxonomy, segment_id, kind, received, expires in store.fetch_all(
            "SELECT provider, taxonomy, segment_id, identifier_type, received_at, expires_at "
            "FROM third_party_memberships WHERE lower(trim(identifier_value)) IN "
            "(SELECT unnest(?)) ORDER BY received_at",
            [values],
        )
    ]


def _lookalikes(store: Store, subject: Subject) -> list[dict[str, Any]]:
    return [
        {"lookalike": name, "score": score, "rank": rank}
        for name, score, rank in store.fetch_all(
            "SELECT lookalike, score, rank FROM lookalike_members "
            "WHERE profile_id IN (SELECT unnest(?)) ORDER BY lookalike",
            [subject.profile_ids],
        )
    ]


def _destinations(store: Store, subject: Subject) -> list[dict[str, Any]]:
    """Audiences each destination was told they are in, and the event destinations whose
    position passed one of their events (those events were sent there)."""
    sent: list[dict[str, Any]] = [
        {
            "destination": name,
            "kind": kind,
            "what": "audience",
            "segment": segment,
            "since": iso_utc(entered),
        }
        for name, kind, segment, entered in store.fetch_all(
            "SELECT d.name, d.kind, s.name, m.entered_at FROM destination_audience_members m "
            "JOIN destinations d ON d.id = m.destination_id "
            "LEFT JOIN segments s ON s.id = m.segment_id "
            "WHERE m.profile_id IN (SELECT unnest(?)) ORDER BY d.name",
            [subject.profile_ids],
        )
    ]
    if subject.seqs:
        first = min(subject.seqs)
        for name, kind, position in store.fetch_all(
            "SELECT d.name, d.kind, p.event_seq FROM destination_positions p "
            "JOIN destinations d ON d.id = p.destination_id WHERE p.event_seq >= ? "
            "ORDER BY d.name",
            [first],
        ):
            count = sum(1 for seq in subject.seqs if seq <= position)
            sent.append({"destination": name, "kind": kind, "what": "events", "events": count})
    return sent


def _other_tables(store: Store, subject: Subject) -> dict[str, int]:
    """Rows in tables added by other features (offers, decisions...): counted by profile."""
    known = {
        "identities",
        "profiles",
        "profile_summaries",
        "event_profiles",
        "identity_ledger",
        "computed_traits",
        "trait_aggregates",
        "lookalike_members",
        "segment_members",
        "destination_audience_members",
    }
    found = {}
    for (table,) in store.fetch_all(
        "SELECT DISTINCT table_name FROM information_schema.columns "
        "WHERE column_name = 'profile_id' AND table_schema = 'main' ORDER BY 1"
    ):
        if table in known:
            continue
        row = store.fetch_one(
            f"SELECT count(*) FROM {table} WHERE profile_id IN (SELECT unnest(?))",
            [subject.profile_ids],
        )
        found[table] = int(row[0]) if row else 0
    return found
