"""A destination's dead letters, and sending again (`replay`).

A message lands here when the destination refused it with a 4xx that retrying cannot fix
(its status and an excerpt of the answer say why), or when it could not be delivered
within the destination's retry window. `replay(..., dead_letters=True)` marks them for
the worker, which sends them before new events and removes each one delivered;
`replay(..., since=TIME)` moves the destination's position back to the last event received
before TIME, so everything after it is sent again (with the same messageIds).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from tessera.activation import destinations, feed
from tessera.errors import InvalidField
from tessera.events.timestamps import iso_utc, utc_now
from tessera.results import Result
from tessera.store import Store

Message = dict[str, Any]


class DeadLetter(Result):
    """A message the destination refused, or that was not delivered in time, and why."""

    id: int
    failed_at: str | None
    message_id: str
    status: int | None
    reason: str
    replay_requested: bool
    message: Message


class Replayed(Result):
    """What a replay queued: the dead letters marked, and where the position moved back to
    (None when it did not move)."""

    destination: str
    dead_letters_queued: int
    position: int | None


def add(
    store: Store, destination_id: str, batch: Sequence[Message], status: int | None, reason: str
) -> None:
    """Put `batch` in the dead letters (inside the worker's transaction)."""
    now = utc_now()
    for message in batch:
        store.execute(
            "INSERT INTO destination_dead_letters VALUES (nextval('destination_dead_letter_ids'),"
            " ?, ?, ?, ?, ?, ?, FALSE)",
            [destination_id, now, str(message.get("messageId", "")),
             orjson.dumps(message).decode(), status, reason],
        )  # fmt: skip


def list_for(store: Store, name: str, limit: int = 100) -> list[DeadLetter]:
    destination = destinations.get(store, name)
    rows = store.fetch_all(
        "SELECT id, failed_at, message_id, status, reason, replay_requested, message FROM "
        "destination_dead_letters WHERE destination_id = ? ORDER BY id DESC LIMIT ?",
        [destination.id, limit],
    )
    return [
        DeadLetter(
            id=int(i),
            failed_at=iso_utc(at),
            message_id=message_id,
            status=status,
            reason=reason,
            replay_requested=bool(queued),
            message=orjson.loads(text),
        )
        for i, at, message_id, status, reason, queued, text in rows
    ]


def requested(store: Store, destination_id: str, limit: int) -> list[tuple[int, Message]]:
    """Dead letters marked for replay, oldest first."""
    rows = store.fetch_all(
        "SELECT id, message FROM destination_dead_letters WHERE destination_id = ? AND "
        "replay_requested ORDER BY id LIMIT ?",
        [destination_id, limit],
    )
    return [(int(i), orjson.loads(text)) for i, text in rows]


def settle(
    store: Store, ids: Sequence[int], delivered: bool, status: int | None, reason: str
) -> None:
    """After a replay: delivered ones go; refused ones stay with the new reason."""
    if delivered:
        store.execute(
            "DELETE FROM destination_dead_letters WHERE list_contains(?, id)", [list(ids)]
        )
    else:
        store.execute(
            "UPDATE destination_dead_letters SET replay_requested = FALSE, status = ?, "
            "reason = ?, failed_at = ? WHERE list_contains(?, id)",
            [status, reason, utc_now(), list(ids)],
        )


def replay(
    store: Store, name: str, *, dead_letters: bool = False, since: datetime | None = None
) -> Replayed:
    """Send a destination's dead letters again, or every event received since `since`."""
    if not dead_letters and since is None:
        raise InvalidField(
            "replay what? give --dead-letters, or --since TIME (ISO 8601, e.g. "
            "2026-11-30T12:00:00Z) to send again every event received since then",
            field="since",
        )
    if since is not None and since.tzinfo is not None:  # the store's times are naive UTC
        try:
            since = since.astimezone(UTC).replace(tzinfo=None)
        except OverflowError as e:
            raise InvalidField(
                f"since {since.isoformat()} is out of range", field="since", value=str(since)
            ) from e
    destination = destinations.get(store, name)
    queued = 0
    moved: int | None = None
    with store.transaction():
        if dead_letters:
            row = store.fetch_one(
                "SELECT count(*) FROM destination_dead_letters WHERE destination_id = ?",
                [destination.id],
            )
            queued = int(row[0]) if row else 0
            store.execute(
                "UPDATE destination_dead_letters SET replay_requested = TRUE "
                "WHERE destination_id = ?",
                [destination.id],
            )
        if since is not None:
            moved = feed.last_seq_before(store, since)
            store.execute(
                "UPDATE destination_positions SET event_seq = least(event_seq, ?), "
                "updated_at = ? WHERE destination_id = ?",
                [moved, utc_now(), destination.id],
            )
    return Replayed(destination=name, dead_letters_queued=queued, position=moved)
