"""The suppression list in the store, and its publication for the collect paths
(suppression.py says what a key is and how the collect path reads the file)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from tessera.events import source_keys
from tessera.store import Store

_FORMAT = 1
_SALT_KEY = "privacy_salt"


def salt(store: Store) -> str:
    """This data directory's salt, made on first use (kept in `meta`)."""
    row = store.fetch_one("SELECT value FROM meta WHERE key = ?", [_SALT_KEY])
    if row is not None:
        return str(row[0])
    made = secrets.token_hex(32)
    store.execute(
        "INSERT INTO meta (key, value) SELECT ?, ? WHERE NOT EXISTS "
        "(SELECT 1 FROM meta WHERE key = ?)",
        [_SALT_KEY, made, _SALT_KEY],
    )
    row = store.fetch_one("SELECT value FROM meta WHERE key = ?", [_SALT_KEY])
    assert row is not None
    return str(row[0])


def existing_salt(store: Store) -> str | None:
    """The salt, when one was made (a store that never suppressed anyone has none)."""
    row = store.fetch_one("SELECT value FROM meta WHERE key = ?", [_SALT_KEY])
    return str(row[0]) if row is not None else None


def adopt_salt(store: Store, value: str) -> str:
    """Take `value` as this store's salt when it has none (a restored backup taken before
    the first suppression, joining the list made since); the salt in force."""
    store.execute(
        "INSERT INTO meta (key, value) SELECT ?, ? WHERE NOT EXISTS "
        "(SELECT 1 FROM meta WHERE key = ?)",
        [_SALT_KEY, value, _SALT_KEY],
    )
    return salt(store)


def add(
    store: Store, entries: Iterable[tuple[str, str]], request_id: str | None, now: datetime
) -> int:
    """Record `(hash, identifier type)` pairs; returns how many were new."""
    added = 0
    for digest, kind in entries:
        row = store.fetch_one("SELECT 1 FROM suppressed_identifiers WHERE hash = ?", [digest])
        if row is None:
            store.execute(
                "INSERT INTO suppressed_identifiers VALUES (?, ?, ?, ?)",
                [digest, kind, request_id, now],
            )
            added += 1
    return added


def count(store: Store) -> int:
    row = store.fetch_one("SELECT count(*) FROM suppressed_identifiers")
    return int(row[0]) if row else 0


def publish(store: Store, path: Path) -> None:
    """Write the salt and every hash for the collect paths (atomically, mode 0600)."""
    hashes = [r[0] for r in store.fetch_all("SELECT hash FROM suppressed_identifiers ORDER BY 1")]
    document = {"format": _FORMAT, "salt": salt(store), "hashes": hashes}
    source_keys.write_document(path, document)
