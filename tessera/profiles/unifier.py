"""Unifying events into people, in memory: identity, then each profile's summary.

The Unifier is what the pipeline drives batch by batch (and persists), and what `replay`
feeds from the log to answer "as of" questions. Pure but for looking up a source's name.
"""

from __future__ import annotations

from typing import Any

import orjson

from tessera.events import failures
from tessera.identity import matches, stored
from tessera.identity.graph import IdentityGraph, LedgerEntry
from tessera.identity.identifiers import (
    Dropped,
    EventIdentifiers,
    Identifier,
    JunkRules,
    read_identifiers,
)
from tessera.identity.rules import MergeRules
from tessera.profiles.summary import Summary
from tessera.profiles.tcf import purposes_of
from tessera.settings import Settings
from tessera.store import Store

NOTABLE = ("merge", "conflict", "breaker", "dropped")

_BATCH_SQL = """
SELECT seq, type, source_id, channel, user_id, anonymous_id, previous_id, email, phone,
       device_id, advertising_id, external_ids, epoch_us(timestamp) AS timestamp,
       CASE WHEN type <> 'group' THEN traits END AS traits,
       json_extract_string(traits, '$.country') AS country,
       json_extract(payload, '$.context.consent.categoryPreferences')::VARCHAR AS consent,
       event,
       coalesce(json_extract_string(payload, '$.context.tcf'),
                json_extract_string(traits, '$.tcf_consent')) AS tcf
FROM events WHERE seq > $after AND seq <= $after + $size ORDER BY seq
"""
# seq is dense (the writer numbers commits without gaps), so a range reads only the row
# groups it needs. `seq > ? ORDER BY seq LIMIT ?` made DuckDB scan and sort the rest of
# the log for every batch: at 5 million events the rebuild ran at 20k instead of 50k/s.
#: the columns of a batch row, in order
COLUMNS = ("seq", "type", "source_id", "channel", "user_id", "anonymous_id", "previous_id",
            "email", "phone", "device_id", "advertising_id", "external_ids", "timestamp",
            "traits", "country", "consent", "event", "tcf")  # fmt: skip
# What decides an event's identifiers: the identifier columns and the region hint (the
# alias target is added to the key where it applies).
_IDENTIFYING = slice(COLUMNS.index("user_id"), COLUMNS.index("external_ids") + 1)
(_SEQ, _TYPE, _SOURCE_ID, _CHANNEL, _PREVIOUS_ID, _TIMESTAMP, _TRAITS, _COUNTRY, _CONSENT,
 _TCF) = (
    COLUMNS.index(name)
    for name in ("seq", "type", "source_id", "channel", "previous_id", "timestamp", "traits",
                 "country", "consent", "tcf")
)  # fmt: skip
#: distinct identifier combinations remembered (`Unifier._identifiers_of`)
_REMEMBERED = 50_000  # about 1 KB each: ~50 MB at most


def merge_rules(store: Store, settings: Settings) -> MergeRules:
    blocks = store.fetch_all("SELECT first, second FROM identity_blocks")
    pairs = [
        (stored.identifier_from_stored(first), stored.identifier_from_stored(second))
        for first, second in blocks
    ]
    return MergeRules.build(
        settings.identity_rules,
        settings.identity_max_identifiers,
        pairs,
        matches.links_in_force(store),
    )


class Unifier:
    """Identity then profile summaries, event by event, in memory (pure but for the
    source look-up). The pipeline persists what it changes; `as_of` replays with one."""

    def __init__(self, store: Store, settings: Settings, rules: MergeRules) -> None:
        self._store = store
        self._settings = settings
        self._junk = JunkRules.build(settings.identity_junk_values, settings.identity_junk_patterns)
        self.graph = IdentityGraph(rules)
        self.summaries: dict[str, Summary] = {}
        #: per live profile, the merges, conflicts and breaker trips that concern it
        self.notable: dict[str, list[LedgerEntry]] = {}
        self._sources: dict[str, tuple[str, int]] = {}
        self._read: dict[tuple[Any, ...], EventIdentifiers] = {}

    @classmethod
    def restore(cls, store: Store, settings: Settings) -> Unifier:
        """The state the pipeline persisted: the graph (`identity/stored.py`), every
        profile's summary and, per live profile, its notable ledger entries."""
        unifier = cls(store, settings, merge_rules(store, settings))
        graph = unifier.graph = stored.restore(store, unifier.graph.rules)
        unifier.summaries = {
            profile: Summary.from_row(first, last, count, channels, state)
            for profile, first, last, count, channels, state in store.fetch_all(
                "SELECT profile_id, epoch_us(first_seen), epoch_us(last_seen), event_count, "
                "channels, trait_state FROM profile_summaries"
            )
        }
        for entry in stored.ledger_entries(store, NOTABLE):
            unifier.notable.setdefault(graph.resolve(entry.profile), []).append(entry)
        return unifier

    def apply(self, rows: list[tuple[Any, ...]]) -> tuple[list[tuple[int, str]], set[str]]:
        """Stitch and summarise rows of `_BATCH_SQL`; returns (seq, profile) and the
        profiles that received events."""
        graph = self.graph
        attributed: list[tuple[int, str]] = []
        touched: set[str] = set()
        for row in rows:
            seq = row[_SEQ]
            target = None
            if row[_TYPE] == "alias" and row[_PREVIOUS_ID]:
                known = graph.profile(Identifier("user_id", row[_PREVIOUS_ID].strip()))
                target = "user_id" if known else "anonymous_id"
            read = self._identifiers_of(row, target)
            before = len(graph.ledger)
            profile = graph.stitch(seq, read.identifiers)
            if read.dropped:
                self._record_dropped(seq, profile, read.dropped)
            if profile is None:
                continue
            if len(graph.ledger) > before:
                self._follow_ledger(graph.ledger[before:])
            source_name, priority = self._source(row[_SOURCE_ID])
            traits, consent = row[_TRAITS], row[_CONSENT]
            self.summary(profile).add_event(
                seq=seq,
                timestamp=row[_TIMESTAMP],
                channel=row[_CHANNEL],
                source=source_name,
                priority=priority,
                traits=orjson.loads(traits) if traits else None,
                consent=consent_of(consent, row[_TCF]) if consent or row[_TCF] else None,
            )
            attributed.append((seq, profile))
            touched.add(profile)
        return attributed, touched

    def _follow_ledger(self, entries: list[LedgerEntry]) -> None:
        """Summaries and notable history follow the merges an event caused."""
        for entry in entries:
            if entry.kind == "merge" and entry.other_profile is not None:
                absorbed = self.summaries.pop(entry.other_profile, None)
                if absorbed is not None:
                    self.summary(entry.profile).absorb(absorbed)
                history = self.notable.pop(entry.other_profile, [])
                self.notable.setdefault(entry.profile, []).extend(history)
            if entry.kind in NOTABLE and entry.profile:
                self.notable.setdefault(entry.profile, []).append(entry)

    def _identifiers_of(self, row: tuple[Any, ...], alias_target: str | None) -> EventIdentifiers:
        """`read_identifiers`, remembered per combination of identifier columns. Reading
        is pure (columns, junk rules and region decide it) and a session's events repeat
        one combination: normalising each again cost a third of the pipeline's time. The
        memory is forgotten whole when full; the result is never mutated by its users."""
        key = (alias_target, row[_COUNTRY], *row[_IDENTIFYING])
        try:
            found = self._read.get(key)
        except TypeError:  # a column that is not a plain value (never from the log)
            key, found = (), None
        if found is None:
            event = dict(zip(COLUMNS, row, strict=True))
            found = read_identifiers(
                event, self._junk, self._settings.default_region, alias_target=alias_target
            )
            if key:
                if len(self._read) >= _REMEMBERED:
                    self._read.clear()
                self._read[key] = found
        return found

    def _record_dropped(self, seq: int, profile: str | None, dropped: list[Dropped]) -> None:
        """Ledger the values that could not be identifiers: once per profile and value
        (its fingerprint), with the first event that carried it; for an event that has no
        profile (no usable identifier at all), every time."""
        known = {
            entry.other for entry in self.notable.get(profile or "", ()) if entry.kind == "dropped"
        }
        for value in dropped:
            fingerprint = Identifier("sha256", value.fingerprint)
            if profile is not None and fingerprint in known:
                continue
            known.add(fingerprint)
            self.graph.ledger.append(
                LedgerEntry(
                    seq,
                    "dropped",
                    profile or "",
                    Identifier(value.type, value.masked),
                    fingerprint,
                    rule=value.reason,
                )
            )

    def summary(self, profile: str) -> Summary:
        found = self.summaries.get(profile)
        if found is None:
            found = self.summaries[profile] = Summary()
        return found

    def _source(self, source_id: str) -> tuple[str, int]:
        found = self._sources.get(source_id)
        if found is None:
            row = self._store.fetch_one(
                "SELECT name, channel FROM sources WHERE id = ?", [source_id]
            )
            name, channel = (row[0], row[1]) if row else (source_id, "")
            priorities = self._settings.trait_source_priority
            found = (name, priorities.get(name, priorities.get(channel, 0)))
            self._sources[source_id] = found
        return found


def read_batch(store: Store, after: int, size: int) -> list[tuple[Any, ...]]:
    """The next events after `after`, at most `size` seqs on. A gap in seq (events erased
    later) is skipped rather than mistaken for the end of the log."""
    rows = store.fetch_all(_BATCH_SQL, {"after": after, "size": size})
    while not rows:
        following = store.fetch_one("SELECT min(seq) FROM events WHERE seq > ?", [after])
        if following is None or following[0] is None:
            return []
        after = int(following[0]) - 1
        rows = store.fetch_all(_BATCH_SQL, {"after": after, "size": size})
    return rows


def replay(
    store: Store,
    settings: Settings,
    *,
    until_received: str | None = None,
    until_seq: int | None = None,
) -> Unifier:
    """A fresh Unifier fed the log up to a moment: the graph and profiles as they stood.
    Events in the pipeline's dead letters are stepped over, as the pipeline does."""
    unifier = Unifier(store, settings, merge_rules(store, settings))
    skipped = failures.skipped(store)
    last = 0
    limit_seq = until_seq
    if until_received is not None:
        row = store.fetch_one(
            "SELECT coalesce(max(seq), 0) FROM events WHERE received_at <= CAST(? AS TIMESTAMP)",
            [until_received],
        )
        limit_seq = int(row[0]) if row else 0
    while True:
        rows = read_batch(store, last, settings.pipeline_batch_size)
        rows = [r for r in rows if limit_seq is None or r[0] <= limit_seq]
        if not rows:
            return unifier
        unifier.apply([row for row in rows if row[0] not in skipped])
        unifier.graph.drain()
        last = rows[-1][0]


def _object(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    parsed = orjson.loads(raw)
    return parsed if isinstance(parsed, dict) else None


def consent_of(preferences: str | None, tc_string: str | None) -> dict[str, Any] | None:
    """An event's consent: Segment's categoryPreferences, and what a TCF v2 string
    (`context.tcf`, the pixel's gdpr_consent, or a `tcf_consent` trait) says of our
    purposes. The categories an event names itself win over the TC string's reading."""
    consent = _object(preferences)
    from_tcf = purposes_of(tc_string) if tc_string else None
    if not from_tcf:
        return consent
    return {**from_tcf, **(consent or {})}
