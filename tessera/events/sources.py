"""Sources: the channels a company collects from, each with its own write key."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from tessera.errors import Conflict, InvalidField, InvalidWriteKey, NotFound, SourceDisabled
from tessera.events.timestamps import utc_now
from tessera.privacy.keys import hash_secret, new_write_key
from tessera.results import Result
from tessera.store import Store

CHANNELS = ("web", "mobile", "server", "email", "chat", "phone", "pos", "crm", "ads")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class SourceView(Result):
    """A source as the edges show it: never its write key, only the key's prefix."""

    id: str
    name: str
    channel: str
    enabled: bool
    write_key_prefix: str
    created_at: str


class SourceKey(Result):
    """A source with its write key: answered only at creation and rotation."""

    id: str
    name: str
    channel: str
    write_key: str


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    name: str
    channel: str
    enabled: bool
    key_prefix: str
    created_at: datetime

    def view(self) -> SourceView:
        return SourceView(
            id=self.id,
            name=self.name,
            channel=self.channel,
            enabled=self.enabled,
            write_key_prefix=self.key_prefix,
            created_at=self.created_at.isoformat(),
        )


@dataclass(frozen=True, slots=True)
class SourceWithKey:
    """A source together with its write key: only ever returned at creation or rotation."""

    source: Source
    write_key: str

    def view(self) -> SourceKey:
        return SourceKey(
            id=self.source.id,
            name=self.source.name,
            channel=self.source.channel,
            write_key=self.write_key,
        )


_COLUMNS = "id, name, channel, enabled, write_key_prefix, created_at"


def _source(row: tuple[object, ...]) -> Source:
    return Source(*row)  # type: ignore[arg-type]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidField(
            f"source name {name!r} must be 1-64 lower-case letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (e.g. 'web-shop')",
            field="name",
            value=name,
        )
    return name


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise InvalidField(
            f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}",
            field="channel",
            value=channel,
        )
    return channel


class SourceDirectory:
    """Create and manage sources; resolve write keys on the hot path from a cache.

    All writes to sources go through one directory per process, which keeps its
    cache exact (the server is the only process writing while it runs).
    """

    def __init__(
        self, store: Store, on_change: Callable[[Mapping[str, Source]], None] | None = None
    ) -> None:
        """`on_change` gets every key digest with its source after each change (and from
        `publish`): the server writes them for its collector processes."""
        self._store = store
        self._lock = threading.Lock()
        self._by_hash: dict[str, Source] | None = None
        self._on_change = on_change
        # One publication at a time, each reading the store afresh: the last one written
        # is then the newest state, whatever order concurrent changes finish in.
        self._publishing = threading.Lock()

    def publish(self) -> None:
        """Hand the current keys to `on_change` (at start, and after each change)."""
        if self._on_change is None:
            return
        with self._publishing:
            self._on_change(self._load())

    def create(self, name: str, channel: str) -> SourceWithKey:
        check_name(name)
        check_channel(channel)
        if self._find(name) is not None:
            raise Conflict(f"a source named {name!r} exists already; pick another name")
        key = new_write_key()
        source_id = "src_" + secrets.token_hex(6)
        self._store.execute(
            "INSERT INTO sources (id, name, channel, write_key_hash, write_key_prefix, "
            "enabled, created_at) VALUES (?, ?, ?, ?, ?, TRUE, ?)",
            [source_id, name, channel, hash_secret(key), key[:8], utc_now()],
        )
        self._invalidate()
        return SourceWithKey(self.get(name), key)

    def list(self) -> list[Source]:
        rows = self._store.fetch_all(f"SELECT {_COLUMNS} FROM sources ORDER BY created_at, name")
        return [_source(row) for row in rows]

    def get(self, name_or_id: str) -> Source:
        found = self._find(name_or_id)
        if found is None:
            known = ", ".join(s.name for s in self.list()) or "none yet"
            raise NotFound(
                f"no source named {name_or_id!r} (known: {known}); "
                "create one with `tessera sources create NAME --channel CHANNEL`"
            )
        return found

    def rotate_key(self, name_or_id: str) -> SourceWithKey:
        """A new write key; the old one stops working at once."""
        source = self.get(name_or_id)
        key = new_write_key()
        self._store.execute(
            "UPDATE sources SET write_key_hash = ?, write_key_prefix = ?, rotated_at = ? "
            "WHERE id = ?",
            [hash_secret(key), key[:8], utc_now(), source.id],
        )
        self._invalidate()
        return SourceWithKey(self.get(source.id), key)

    def set_enabled(self, name_or_id: str, enabled: bool) -> Source:
        source = self.get(name_or_id)
        self._store.execute("UPDATE sources SET enabled = ? WHERE id = ?", [enabled, source.id])
        self._invalidate()
        return self.get(source.id)

    def authenticate(self, write_key: str) -> Source:
        """The enabled source this write key belongs to, or InvalidWriteKey/SourceDisabled."""
        cache = self._by_hash
        if cache is None:
            cache = self._load()
        source = cache.get(hash_secret(write_key))
        if source is None:
            raise InvalidWriteKey(
                "the write key is not known (it may have been rotated); copy the current key "
                "from `tessera sources list` or the console"
            )
        return check_known(source)

    def _find(self, name_or_id: str) -> Source | None:
        row = self._store.fetch_one(
            f"SELECT {_COLUMNS} FROM sources WHERE name = ? OR id = ?", [name_or_id, name_or_id]
        )
        return _source(row) if row else None

    def _load(self) -> dict[str, Source]:
        with self._lock:
            rows = self._store.fetch_all(f"SELECT write_key_hash, {_COLUMNS} FROM sources")
            cache = {row[0]: _source(row[1:]) for row in rows}
            self._by_hash = cache
            return cache

    def _invalidate(self) -> None:
        with self._lock:
            self._by_hash = None
        self.publish()


def check_known(source: Source) -> Source:
    """The source a write key named, if it may send events (else SourceDisabled)."""
    if not source.enabled:
        raise SourceDisabled(f"source {source.name!r} is disabled; enable it to send events")
    return source
