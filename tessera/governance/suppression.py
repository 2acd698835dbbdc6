"""Suppression: identifiers that must never come back, kept only as salted hashes.

An erasure or a suppression request adds the person's identifiers here. The core process
stores the hashes (`suppressed_identifiers`) and publishes them with the salt in
`DATA_DIR/suppressed.json` (write, fsync, rename; mode 0600), the way the write keys reach
the collectors (events/source_keys.py). Every process's collect path asks a
`PublishedSuppression` whether an accepted event names one of them; when it does, the
event is dropped and counted, never stored.

A key is the HMAC-SHA256 of the value trimmed and lower-cased, under a salt made once
per data directory: the list cannot be read back into e-mail addresses by hashing a
dictionary of them without the salt, and a value matches whatever field it arrives in
(an e-mail sent as a userId is dropped too). Phones are also keyed in E.164, so
`+33 6 12 34 56 78` and `+33612345678` meet.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from tessera.eventlog import LOG_REJECTED_SCHEMA
from tessera.eventlog.records import batch_of
from tessera.events.collect import SUPPRESSED
from tessera.events.contract import EventRow
from tessera.events.screens import Screened
from tessera.identity.identifiers import Identifier, normalise

log = logging.getLogger(__name__)

#: the event log's identifier columns a suppressed value is looked for in
_COLUMNS = ("user_id", "anonymous_id", "previous_id", "email", "device_id", "advertising_id")


def key(salt: str, value: str) -> str:
    """The stored form of one identifier value (see the module docstring)."""
    return hmac.new(salt.encode(), value.strip().lower().encode(), hashlib.sha256).hexdigest()


def keys_of(salt: str, identifier: Identifier) -> set[str]:
    """The keys an identifier is suppressed under (its normalised value)."""
    return {key(salt, identifier.value)}


class PublishedSuppression:
    """`drops(row)` for the collect path, from the published file, re-read when it changes
    (looked at most every `check_every_s`). With no hash published it costs one
    attribute check per request: the ingest hot path is unchanged (docs/ingest.md)."""

    def __init__(self, path: Path, *, check_every_s: float = 0.2) -> None:
        self._path = path
        self._check_every = check_every_s
        self._lock = threading.Lock()
        self._salt = ""
        self._hashes: frozenset[str] = frozenset()
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        #: events dropped as they were stored (the log's loader, imports)
        self.dropped_at_load = 0

    def drops(self, row: EventRow) -> bool:
        hashes = self._current()
        if not hashes:
            return False
        return self._names(hashes, [getattr(row, c) for c in _COLUMNS], row.phone, row.external_ids)

    def _names(
        self, hashes: frozenset[str], values: list[Any], phone: str | None, external: str | None
    ) -> bool:
        found = list(values)
        if phone:
            found.append(phone)
            found.append(normalise("phone", phone) or "")
        if external:
            found.extend(_external_values(external))
        salt_value = self._salt
        return any(key(salt_value, value) in hashes for value in found if value)

    def screen(self, events: pa.Table) -> Screened | None:
        """The EventWriter's screen: the same check as the loaded log and every import are
        stored, so an event accepted in the instant before a collector read a new list,
        or a row of a file import, does not bring a suppressed person back either."""
        hashes = self._current()
        if not hashes:
            return None
        columns = [events.column(c).to_pylist() for c in _COLUMNS]
        phones = events.column("phone").to_pylist()
        external = events.column("external_ids").to_pylist()
        dropped = [
            self._names(hashes, [column[i] for column in columns], phones[i], external[i])
            for i in range(events.num_rows)
        ]
        if not any(dropped):
            return None
        self.dropped_at_load += sum(dropped)
        sources = events.column("source_id").to_pylist()
        received = events.column("received_at").to_pylist()
        reason = "the event names a suppressed person; it was not kept"
        letters = [
            (sources[i], received[i], SUPPRESSED, None, reason, None, "")
            for i in range(events.num_rows)
            if dropped[i]
        ]
        kept = events.filter(pa.array([not d for d in dropped]))
        rejected = pa.Table.from_batches([batch_of(letters, LOG_REJECTED_SCHEMA)])
        return Screened(kept, rejected, [])

    def _current(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._checked_at >= self._check_every:
            with self._lock:
                if now - self._checked_at >= self._check_every:
                    self._refresh()
                    self._checked_at = now
        return self._hashes

    def refresh_now(self) -> None:
        """Read the file again at once (after this process published it)."""
        with self._lock:
            self._refresh()
            self._checked_at = time.monotonic()

    def _refresh(self) -> None:
        try:
            status = os.stat(self._path)
        except OSError:
            return  # nothing suppressed yet (or the core renames a new file in shortly)
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp == self._stamp:
            return
        try:
            document = orjson.loads(self._path.read_bytes())
            salt_value = str(document["salt"])
            hashes = frozenset(str(h) for h in document["hashes"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            # Keep the last list: dropping nothing would let a suppressed person back in.
            log.warning(
                "the suppression list could not be read (%s); keeping the last one",
                type(e).__name__,
            )
            return
        self._salt, self._hashes, self._stamp = salt_value, hashes, stamp


def _external_values(text: str) -> list[str]:
    try:
        items = orjson.loads(text)
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    return [str(item.get("id")) for item in items if isinstance(item, dict) and item.get("id")]
