"""Destinations: create, list, show, disable, enable, delete, rotate the signing secret.

Each use case takes the store (and the values the user gave), raises a TesseraError for
every mistake a user can make, and returns a `Destination` result (or `Created`, which
alone carries the webhook secret: it is shown once, like a source's write key), whose
credentials are masked. The workers read `Configured` instead (`configurations`,
`configuration`): the real options, never handed to an edge.
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
from pydantic import Field, field_serializer

from tessera.activation.options import DestinationOptions, check
from tessera.errors import InvalidField, NotFound
from tessera.events.timestamps import iso_utc, utc_now
from tessera.profiles.consent import PURPOSES
from tessera.results import Result
from tessera.store import Store

#: Options whose values are credentials: never shown back after they are set.
CREDENTIALS = ("write_key", "access_token")
_COLUMNS = "id, name, kind, purpose, enabled, config, created_at, updated_at, secret_rotated_at"


class Destination(Result):
    """One destination as the edges show it: its options with the credentials masked."""

    id: str
    name: str
    kind: str
    purpose: str
    enabled: bool
    options: DestinationOptions = Field(
        description="The options given (defaults left out); credentials shown as ********"
    )
    created_at: str | None
    updated_at: str | None
    secret_rotated_at: str | None

    @field_serializer("options")
    def _given(self, options: DestinationOptions) -> dict[str, Any]:
        # The options as stored (defaults left out), the shape the user gave them in.
        return options.to_json()


class Created(Destination):
    """A destination just created (or its secret just rotated), with its signing secret:
    the only time the secret is shown."""

    secret: str | None


class DestinationDeleted(Result):
    """A deleted destination and how many dead letters went with it."""

    name: str
    deleted: bool
    dead_letters_deleted: int


@dataclass(frozen=True)
class Configured:
    """A destination as its worker needs it: the real options, credentials included."""

    id: str
    name: str
    kind: str
    purpose: str
    enabled: bool
    options: DestinationOptions
    created_at: datetime
    updated_at: datetime


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
    return _created(get(store, name), secret)


def list_all(store: Store) -> list[Destination]:
    return [_shown(row) for row in _rows(store)]


def get(store: Store, name: str) -> Destination:
    return _shown(_row(store, name))


def configurations(store: Store) -> list[Configured]:
    """Every destination with its real options, for the workers."""
    return [_configured(row) for row in _rows(store)]


def configuration(store: Store, name: str) -> Configured:
    """One destination with its real options, for a worker."""
    return _configured(_row(store, name))


def _rows(store: Store) -> list[tuple[Any, ...]]:
    return store.fetch_all(f"SELECT {_COLUMNS} FROM destinations ORDER BY name")


def _row(store: Store, name: str) -> tuple[Any, ...]:
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
    return row


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
    return _created(get(store, name), secret)


def delete(store: Store, name: str) -> DestinationDeleted:
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
    return DestinationDeleted(
        name=name, deleted=True, dead_letters_deleted=int(row[0]) if row else 0
    )


def secret_of(store: Store, destination_id: str) -> str | None:
    """The signing secret, for the worker that signs (never for an edge to show)."""
    row = store.fetch_one("SELECT secret FROM destinations WHERE id = ?", [destination_id])
    return str(row[0]) if row and row[0] is not None else None


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _configured(row: tuple[Any, ...]) -> Configured:
    options = DestinationOptions.model_validate(orjson.loads(row[5]))
    return Configured(row[0], row[1], row[2], row[3], bool(row[4]), options, row[6], row[7])


def _shown(row: tuple[Any, ...]) -> Destination:
    options = DestinationOptions.model_validate(orjson.loads(row[5]))
    masked = {c: "********" for c in CREDENTIALS if getattr(options, c) is not None}
    return Destination(
        id=row[0], name=row[1], kind=row[2], purpose=row[3], enabled=bool(row[4]),
        options=options.model_copy(update=masked), created_at=iso_utc(row[6]),
        updated_at=iso_utc(row[7]), secret_rotated_at=iso_utc(row[8]),
    )  # fmt: skip


def _created(destination: Destination, secret: str | None) -> Created:
    return Created(**dict(destination), secret=secret)


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
