"""The write keys, published as a file for processes that have no store: the collectors.

The core process, the only one with the store, writes every source's key digest, id,
name, channel and enabled flag to `DATA_DIR/source-keys.json` whenever a source changes
(write, fsync, rename: a reader sees the old file or the new one, never half of one;
mode 0600). A collector's `PublishedKeys` re-reads it when its modification time, size
or inode changes, looking at most every `check_every_s` and at once for a key it does not
know: a key created through the API works on its first request, and one rotated or
disabled stops within `check_every_s`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import orjson

from tessera.errors import InvalidWriteKey, StoreUnavailable
from tessera.events.sources import Source, check_known
from tessera.privacy.keys import hash_secret

log = logging.getLogger(__name__)

_FORMAT = 1


def publish(path: Path, by_hash: Mapping[str, Source]) -> None:
    """Write the key digests atomically (temporary file, fsync, rename), mode 0600."""
    document = {
        "format": _FORMAT,
        "sources": {
            digest: {
                "id": source.id,
                "name": source.name,
                "channel": source.channel,
                "enabled": source.enabled,
                "key_prefix": source.key_prefix,
                "created_at": source.created_at.isoformat(),
            }
            for digest, source in by_hash.items()
        },
    }
    write_document(path, document)


def write_document(path: Path, document: object) -> None:
    """`document` as JSON in `path`, atomically (a reader sees the old file or the new one),
    fsync'd, owner-only: what the collect paths read while the core publishes."""
    # mkstemp: a name of its own (two publishers never share a temporary), mode 0600.
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        try:
            os.write(descriptor, orjson.dumps(document))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict[str, Source]:
    """The published digests, or StoreUnavailable when the file is missing or unreadable."""
    try:
        document = orjson.loads(path.read_bytes())
        return {
            digest: Source(
                id=str(entry["id"]),
                name=str(entry["name"]),
                channel=str(entry["channel"]),
                enabled=bool(entry["enabled"]),
                key_prefix=str(entry["key_prefix"]),
                created_at=datetime.fromisoformat(str(entry["created_at"])),
            )
            for digest, entry in document["sources"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise StoreUnavailable(
            f"the write keys at {path} cannot be read ({type(e).__name__}); the core process "
            "writes them at start: retry in a moment"
        ) from e


class PublishedKeys:
    """Resolves write keys from the published file, re-read when it changes."""

    def __init__(self, path: Path, *, check_every_s: float = 0.2) -> None:
        self._path = path
        self._check_every = check_every_s
        self._lock = threading.Lock()
        self._by_hash: dict[str, Source] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")

    def authenticate(self, write_key: str) -> Source:
        """The enabled source this write key belongs to, or InvalidWriteKey/SourceDisabled."""
        digest = hash_secret(write_key)
        source = self._current().get(digest)
        if source is None:
            # A key unknown here may have been created a moment ago: the core publishes
            # before its API answers, so looking at the file now (not at the next check)
            # makes a new key work on its first request.
            source = self._current(force=True).get(digest)
        if source is None:
            raise InvalidWriteKey(
                "the write key is not known (it may have been rotated); copy the current key "
                "from `tessera sources list` or the console"
            )
        return check_known(source)

    def _current(self, *, force: bool = False) -> dict[str, Source]:
        now = time.monotonic()
        if not force and now - self._checked_at < self._check_every:
            return self._by_hash
        with self._lock:
            if force or now - self._checked_at >= self._check_every:
                self._refresh()
                self._checked_at = now
        return self._by_hash

    def _refresh(self) -> None:
        try:
            status = os.stat(self._path)
        except OSError as e:
            if self._stamp is None:
                raise StoreUnavailable(
                    f"no write keys published at {self._path} yet; retry in a moment"
                ) from e
            return  # keep the last keys seen: the core renames a new file in shortly
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp == self._stamp:
            return
        try:
            self._by_hash = read(self._path)
        except StoreUnavailable:
            if self._stamp is None:
                raise
            log.warning("the published write keys could not be read; keeping the last ones")
            return
        self._stamp = stamp
