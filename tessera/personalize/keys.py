"""Publishable keys: the decision API's credential, created per source.

A publishable key (`tpk_...`) goes into a web page or an app, where anyone can read it, so
it grants the least: the decision for the visitor the request names (exposed traits,
exposable segments, offers, recommendations), nothing else. It is not a write key (events
cannot be sent with it) and the admin API refuses it. Stored hashed, like write keys: the key
is shown once, at creation.
"""

from __future__ import annotations

import uuid
from typing import Any

from tessera.context import Context
from tessera.errors import InvalidField, NotFound
from tessera.events.sources import SourceDirectory
from tessera.events.timestamps import iso_utc, utc_now
from tessera.privacy.keys import PUBLISHABLE_KEY_PREFIX, hash_secret, new_publishable_key
from tessera.results import Result
from tessera.store import Store


class PublishableKey(Result):
    id: str
    source: str
    key_prefix: str
    created_at: str | None
    revoked_at: str | None


class PublishableKeyCreated(PublishableKey):
    """A key just created: the only time the key itself is shown."""

    key: str


def create(context: Context, sources: SourceDirectory, source: str) -> PublishableKeyCreated:
    """A new key for `source` (shown once: only its hash is kept); it works at once."""
    found = sources.get(source)
    key = new_publishable_key()
    key_id = "pk_" + uuid.uuid4().hex[:12]
    context.store.execute(
        "INSERT INTO publishable_keys VALUES (?, ?, ?, ?, ?, NULL)",
        [key_id, found.id, hash_secret(key), key[:10], utc_now()],
    )
    context.definitions_changed()
    return PublishableKeyCreated(**dict(_get(context.store, key_id)), key=key)


def list_all(store: Store) -> list[PublishableKey]:
    return [_key(row) for row in store.fetch_all(_SELECT + " ORDER BY k.created_at, k.id")]


def revoke(context: Context, key_id: str) -> PublishableKey:
    """The key stops working at once (`Context.definitions_changed`; a process serving
    decisions that is not told reads keys at its next refresh over everyone)."""
    _get(context.store, key_id)
    context.store.execute(
        "UPDATE publishable_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
        [utc_now(), key_id],
    )
    context.definitions_changed()
    return _get(context.store, key_id)


def active(store: Store) -> dict[str, str]:
    """Hash of each usable key → the id of its source (enabled sources only)."""
    return {
        row[0]: row[1]
        for row in store.fetch_all(
            "SELECT k.key_hash, k.source_id FROM publishable_keys k "
            "JOIN sources s ON s.id = k.source_id WHERE k.revoked_at IS NULL AND s.enabled"
        )
    }


def looks_publishable(key: str) -> bool:
    return key.startswith(PUBLISHABLE_KEY_PREFIX)


_SELECT = (
    "SELECT k.id, s.name, k.key_prefix, k.created_at, k.revoked_at FROM publishable_keys k "
    "LEFT JOIN sources s ON s.id = k.source_id"
)


def _get(store: Store, key_id: str) -> PublishableKey:
    if not key_id or len(key_id) > 64:
        raise InvalidField(f"key id {key_id!r} must look like pk_...", field="id", value=key_id)
    row = store.fetch_one(_SELECT + " WHERE k.id = ?", [key_id])
    if row is None:
        raise NotFound(
            f"no publishable key {key_id!r}; `tessera personalize keys` lists them",
            field="id",
            value=key_id,
        )
    return _key(row)


def _key(row: tuple[Any, ...]) -> PublishableKey:
    return PublishableKey(
        id=row[0], source=row[1] or "(deleted source)", key_prefix=row[2],
        created_at=iso_utc(row[3]), revoked_at=iso_utc(row[4]),
    )  # fmt: skip
