"""What a destination reads: events after its position on the log, and audience changes.

The log is the queue. A destination's position is the last `seq` it has delivered
(`destination_positions`); it reads on from there, but never past the pipeline's
`processed_seq`, because only then is each event attributed to a person whose consent is
known (an event whose person refuses the destination's purpose is suppressed, not sent).

Audiences: the destination keeps the members it has told about per segment
(`destination_audience_members`); the difference with the segment's open stays is what
entered and what left. The first sync of a segment therefore sends every current member,
and after a restart nothing told is told again unless its delivery was not recorded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from tessera.activation.messages import AudienceChange, EventRow
from tessera.store import Store


def position(store: Store, destination_id: str) -> int:
    row = store.fetch_one(
        "SELECT event_seq FROM destination_positions WHERE destination_id = ?", [destination_id]
    )
    return int(row[0]) if row else 0


def horizon(store: Store) -> int:
    """The last seq a destination may read: stored, and attributed by the pipeline."""
    row = store.fetch_one(
        "SELECT least(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT value "
        "FROM pipeline_state WHERE key = 'processed_seq'), 0))"
    )
    return int(row[0]) if row else 0


def read_events(store: Store, after: int, upto: int, limit: int) -> list[EventRow]:
    """Up to `limit` events with after < seq <= upto, in order, each with its person's consent."""
    rows = store.fetch_all(
        "SELECT seq, source_id, message_id, type, event, timestamp, payload FROM events "
        "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        [after, upto, limit],
    )
    if not rows:
        return []
    consent = consents_of_events(store, rows[0][0], rows[-1][0])
    return [
        EventRow(seq, source, message_id, kind, event, at, payload, consent.get(seq, {}))
        for seq, source, message_id, kind, event, at, payload in rows
    ]


def consents_of_events(store: Store, first: int, last: int) -> dict[int, dict[str, Any]]:
    """The consent of each event's person (as the pipeline merged it), by seq; events of
    people without a consent record are absent."""
    rows = store.fetch_all(
        "SELECT ep.seq, s.consent FROM event_profiles ep "
        "LEFT JOIN profiles p ON p.profile_id = ep.profile_id "
        "JOIN profile_summaries s ON s.profile_id = coalesce(p.merged_into, ep.profile_id) "
        "WHERE ep.seq BETWEEN ? AND ? AND s.consent <> '{}'",
        [first, last],
    )
    return {seq: orjson.loads(text) for seq, text in rows if text}


def last_seq_before(store: Store, moment: datetime) -> int:
    """The last seq received before `moment` (where a replay `--since` starts after)."""
    row = store.fetch_one(
        "SELECT coalesce(max(seq), 0) FROM events WHERE received_at < ?", [moment]
    )
    return int(row[0]) if row else 0


def audience_changes(
    store: Store, destination_id: str, segment_names: Sequence[str], limit: int
) -> list[AudienceChange]:
    """Up to `limit` members who entered or left the destination's segments since it was
    last told (see the module), with their identifiers and consent."""
    found: list[tuple[str, str, str, bool, datetime]] = []
    for segment_id, name in store.fetch_all(
        "SELECT id, name FROM segments WHERE list_contains(?, name) ORDER BY name",
        [list(segment_names)],
    ):
        room = limit - len(found)
        if room <= 0:
            break
        entered = store.fetch_all(
            "SELECT m.profile_id, m.entered_at FROM segment_members m WHERE m.segment_id = ? "
            "AND m.left_at IS NULL AND NOT EXISTS (SELECT 1 FROM destination_audience_members "
            "d WHERE d.destination_id = ? AND d.segment_id = m.segment_id AND d.profile_id = "
            "m.profile_id) ORDER BY m.entered_at, m.profile_id LIMIT ?",
            [segment_id, destination_id, room],
        )
        found += [(segment_id, name, p, True, at) for p, at in entered]
        exited = store.fetch_all(
            "SELECT d.profile_id, coalesce((SELECT max(left_at) FROM segment_members m WHERE "
            "m.segment_id = d.segment_id AND m.profile_id = d.profile_id), d.entered_at) "
            "FROM destination_audience_members d WHERE d.destination_id = ? AND d.segment_id "
            "= ? AND NOT EXISTS (SELECT 1 FROM segment_members m WHERE m.segment_id = "
            "d.segment_id AND m.profile_id = d.profile_id AND m.left_at IS NULL) "
            "ORDER BY d.profile_id LIMIT ?",
            [destination_id, segment_id, max(0, limit - len(found))],
        )
        found += [(segment_id, name, p, False, at) for p, at in exited]
    if not found:
        return []
    people = sorted({item[2] for item in found})
    identifiers = _identifiers(store, people)
    consent = _consents(store, people)
    return [
        AudienceChange(segment_id, name, profile, entered, at,
                       identifiers.get(profile, {}), consent.get(profile, {}))
        for segment_id, name, profile, entered, at in found
    ]  # fmt: skip


def record_told(store: Store, destination_id: str, changes: Sequence[AudienceChange]) -> None:
    """Remember what the destination now knows (inside the worker's transaction)."""
    for change in changes:
        if change.entered:
            store.execute(
                "INSERT INTO destination_audience_members VALUES (?, ?, ?, ?)",
                [destination_id, change.segment_id, change.profile_id, change.at],
            )
        else:
            store.execute(
                "DELETE FROM destination_audience_members WHERE destination_id = ? AND "
                "segment_id = ? AND profile_id = ?",
                [destination_id, change.segment_id, change.profile_id],
            )


def _identifiers(store: Store, people: list[str]) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for profile, kind, value in store.fetch_all(
        "SELECT coalesce(p.merged_into, i.profile_id) AS live, i.type, i.value FROM identities "
        "i LEFT JOIN profiles p ON p.profile_id = i.profile_id WHERE list_contains(?, "
        "coalesce(p.merged_into, i.profile_id)) ORDER BY live, i.type, i.first_seq, i.value",
        [people],
    ):
        found[profile][kind].append(value)
    return found


def _consents(store: Store, people: list[str]) -> dict[str, dict[str, Any]]:
    rows = store.fetch_all(
        "SELECT profile_id, consent FROM profile_summaries WHERE list_contains(?, profile_id) "
        "AND consent <> '{}'",
        [people],
    )
    return {profile: orjson.loads(text) for profile, text in rows}
