"""Destinations: create, list, show, disable, enable, delete, rotate the signing secret.

Each use case takes the store (and the values the user gave), raises a TesseraError for
every mistake a user can make, and returns a frozen `Destination` (or `Created`, which
alone carries the webhook secret: it is shown once, like a source's write key).
A new destination starts at the end of the log: it receives what arrives from now on
(`replay --since` sends the past); its audiences start with a first sync of the members.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from tessera.activation.options import DestinationOptions, check
from tessera.errors import InvalidField, NotFound
from tessera.events.timestamps import iso_utc, utc_now
from tessera.profiles.consent import PURPOSES
from tessera.store import Store

#: Options whose values are credentials: never shown back after they are set.
CREDENTIALS = ("write_key", "access_token")
_COLUMNS = "id, name, kind, purpose, enabled, config, created_at, updated_at, secret_rotated_at"


@dataclass(frozen=True)
class Destination:
    id: str
    name: str
    kind: str
    purpose: str
    enabled: bool
    options: DestinationOptions
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        shown = self.options.to_json()
        for credential in CREDENTIALS:
            if credential in shown:
                shown[credential] = "********"
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "purpose": self.purpose,
            "enabled": self.enabled, "options": shown, "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
            "secret_rotated_at": iso_utc(self.secret_rotated_at),
        }  # fmt: skip


@dataclass(frozen=True)
class Created:
    """A destination just created (or its secret just rotated), with its signing secret:
    the only time the secret is shown."""

    destination: Destination
    secret: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.destination.to_dict(), "secret": self.secret}


@dataclass(frozen=True)
class Deleted:
    name: str
    dead_letters: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "deleted": True, "dead_letters_deleted": self.dead_letters}


def create(store: Store, name: str, kind: str, purpose: str, document: dict[str, Any]) -> Created:
    """A new destination named `name` (see the module); its options checked for its kind."""
    _check_name(name)
    if purpose not in PURPOSES:
        raise InvalidField(
            f"purpose {purpose!r} must be one of {', '.join(PURPOSES)}: what the destination "
            "uses the data for, checked against each person's consent",
            field="purpose",
            value=purpose,
        )
    options = check(kind, document)
    _check_sources(store, options)
    secret = new_secret() if kind == "webhook" else None
    now = utc_now()
    destination_id = str(uuid.uuid4())
    with store.transaction():
        store.execute(
            "INSERT INTO destinations (id, name, kind, purpose, enabled, config, secret, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, TRUE, ?, ?, ?, ?)",
            [destination_id, name, kind, purpose, orjson.dumps(options.to_json()).decode(),
             secret, now, now],
        )  # fmt: skip
        store.execute(
            "INSERT INTO destination_positions VALUES (?, "
            "(SELECT coalesce(max(seq), 0) FROM events), ?)",
            [destination_id, now],
        )
    return Created(get(store, name), secret)


def list_all(store: Store) -> list[Destination]:
    rows = store.fetch_all(f"SELECT {_COLUMNS} FROM destinations ORDER BY name")
    return [_destination(row) for row in rows]


def get(store: Store, name: str) -> Destination:
    row = store.fetch_one(f"SELECT {_COLUMNS} FROM destinations WHERE name = ?", [name])
    if row is None:
        known = [d.name for d in list_all(store)]
        raise NotFound(
            f"no destination named {name!r}; "
            + (f"there are: {', '.join(known)}" if known else "create one with "
               "`tessera destinations create NAME --kind webhook --url URL`"),
            field="name",
            value=name,
        )  # fmt: skip
    return _destination(row)


def set_enabled(store: Store, name: str, enabled: bool) -> Destination:
    """Disabled, a destination's worker stops; enabled again, it resumes where it was."""
    destination = get(store, name)
    store.execute(
        "UPDATE destinations SET enabled = ?, updated_at = ? WHERE id = ?",
        [enabled, utc_now(), destination.id],
    )
    return get(store, name)


def rotate_secret(store: Store, name: str) -> Created:
    """A new signing secret for a webhook; the old one stops working at once."""
    destination = get(store, name)
    if destination.kind != "webhook":
        raise InvalidField(
            f"destination {name!r} is a {destination.kind}: only webhooks sign with a secret",
            field="name",
            value=name,
        )
    secret = new_secret()
    now = utc_now()
    store.execute(
        "UPDATE destinations SET secret = ?, secret_rotated_at = ?, updated_at = ? WHERE id = ?",
        [secret, now, now, destination.id],
    )
    return Created(get(store, name), secret)


def delete(store: Store, name: str) -> Deleted:
    """The destination, its position, its dead letters and its delivery log."""
    destination = get(store, name)
    row = store.fetch_one(
        "SELECT count(*) FROM destination_dead_letters WHERE destination_id = ?",
        [destination.id],
    )
    with store.transaction():
        for table in ("destination_positions", "destination_audience_members",
                      "destination_dead_letters", "destination_deliveries",
                      "destination_errors"):  # fmt: skip
            store.execute(f"DELETE FROM {table} WHERE destination_id = ?", [destination.id])
        store.execute("DELETE FROM destinations WHERE id = ?", [destination.id])
    return Deleted(name, int(row[0]) if row else 0)


def secret_of(store: Store, destination_id: str) -> str | None:
    """The signing secret, for the worker that signs (never for an edge to show)."""
    row = store.fetch_one("SELECT secret FROM destinations WHERE id = ?", [destination_id])
    return str(row[0]) if row and row[0] is not None else None


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _destination(row: tuple[Any, ...]) -> Destination:
    options = DestinationOptions.model_validate(orjson.loads(row[5]))
    return Destination(row[0], row[1], row[2], row[3], bool(row[4]), options,
                       row[6], row[7], row[8])  # fmt: skip


def _check_name(name: str) -> None:
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidField(
            f"destination name {name!r} must be 1-100 letters, digits, '-', '_' or '.'",
            field="name",
            value=name,
        )


def _check_sources(store: Store, options: DestinationOptions) -> None:
    known = {row[0] for row in store.fetch_all("SELECT name FROM sources")}
    for source in options.sources:
        if source not in known:
            raise InvalidField(
                f"source {source!r} does not exist; known sources: "
                f"{', '.join(sorted(known)) or 'none yet'}",
                field="sources",
                value=source,
            )
    segments = {row[0] for row in store.fetch_all("SELECT name FROM segments")}
    for segment in options.segments:
        if segment not in segments:
            raise InvalidField(
                f"segment {segment!r} does not exist; create it first (`tessera segments "
                "create`) or pick one of: " + (", ".join(sorted(segments)) or "none yet"),
                field="segments",
                value=segment,
            )
