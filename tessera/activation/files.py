"""The `files` kind: messages as JSON lines or Parquet files in a folder, with a manifest.

Each batch is appended to a spool file (`.spool.jsonl`) and flushed to disk before `send`
answers, so a delivered batch survives a crash (the worker moves its position only after
that). When the spool passes `roll_bytes` or `roll_seconds`, it becomes a finished file
(`events-<time>-<n>.jsonl` as is, or `.parquet` converted by pyarrow), written under a
temporary name and renamed, and `manifest.json` lists it: name, format, rows, bytes, the
time it was finished. Warehouses and lake loaders read the manifest, never the spool.
A folder given as an fsspec URL (s3://, gs://) needs the `fsspec` package and its
filesystem: the spool stays in the local data directory and finished files are uploaded.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from tessera.activation.connectors import Outcome
from tessera.activation.options import DestinationOptions
from tessera.errors import InvalidField

Message = dict[str, Any]
SPOOL = ".spool.jsonl"
MANIFEST = "manifest.json"
_COLUMNS = ("messageId", "type", "event", "userId", "anonymousId", "timestamp")


class FilesConnector:
    """Writes batches into `options.directory` (see the module)."""

    def __init__(self, options: DestinationOptions, spool_dir: Path) -> None:
        target = options.directory or ""
        self.remote = "://" in target and not target.startswith("file://")
        self.folder = spool_dir if self.remote else Path(target.removeprefix("file://"))
        self.target = target
        self.format = options.file_format
        self.roll_bytes = options.roll_bytes
        self.roll_seconds = options.roll_seconds
        self.filesystem = _filesystem(target) if self.remote else None
        self.folder.mkdir(parents=True, exist_ok=True)
        self.spool = self.folder / SPOOL
        self.opened_at = time.monotonic()
        # The worker's senders call `send` from several threads: one at a time here, or
        # a roll could read the spool, another sender append and be acknowledged, and the
        # roll unlink the spool with that batch in it (and two rolls wrote one spool twice).
        self._lock = threading.RLock()

    def send(self, batch: Sequence[Message]) -> Outcome:
        started = time.monotonic()
        try:
            with self._lock:
                with self.spool.open("ab") as handle:
                    handle.write(b"".join(orjson.dumps(m) + b"\n" for m in batch))
                    handle.flush()
                    os.fsync(handle.fileno())
                self._roll_if_due()
        except OSError as e:
            return Outcome(None, f"{type(e).__name__}: {e}", None, time.monotonic() - started)
        return Outcome(200, "", None, time.monotonic() - started)

    def idle(self) -> None:
        with self._lock:
            self._roll_if_due()

    def close(self) -> None:
        return None

    def roll(self) -> Path | None:
        """Finish the spool as a file now (None when it is empty)."""
        with self._lock:
            return self._roll()

    def _roll(self) -> Path | None:
        if not self.spool.exists() or self.spool.stat().st_size == 0:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        final = self.folder / f"events-{stamp}.{self.format}"
        temporary = final.with_name("." + final.name + ".tmp")
        lines = self.spool.read_bytes().splitlines()
        if self.format == "parquet":
            pq.write_table(_table([orjson.loads(line) for line in lines]), temporary)
        else:
            temporary.write_bytes(self.spool.read_bytes())
        os.replace(temporary, final)
        self.spool.unlink()
        self.opened_at = time.monotonic()
        entry = {"name": final.name, "format": self.format, "rows": len(lines),
                 "bytes": final.stat().st_size,
                 "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}  # fmt: skip
        if self.filesystem is not None:
            self.filesystem.put(str(final), f"{self.target.rstrip('/')}/{final.name}")
            final.unlink()
        self._add_to_manifest(entry)
        return final

    def _roll_if_due(self) -> None:
        if not self.spool.exists():
            self.opened_at = time.monotonic()
            return
        aged = time.monotonic() - self.opened_at >= self.roll_seconds
        if aged or self.spool.stat().st_size >= self.roll_bytes:
            self.roll()

    def _add_to_manifest(self, entry: dict[str, Any]) -> None:
        path = self.folder / MANIFEST
        manifest = orjson.loads(path.read_bytes()) if path.exists() else {"files": []}
        manifest["files"].append(entry)
        temporary = path.with_name("." + MANIFEST + ".tmp")
        temporary.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        os.replace(temporary, path)
        if self.filesystem is not None:
            self.filesystem.put(str(path), f"{self.target.rstrip('/')}/{MANIFEST}")


def _table(messages: list[Message]) -> pa.Table:
    """Parquet columns: the ids and times warehouses key on, and the whole message as JSON."""
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for message in messages:
        for name in _COLUMNS:
            value = message.get(name)
            columns[name].append(None if value is None else str(value))
    return pa.table({**columns, "message": [orjson.dumps(m).decode() for m in messages]})


def _filesystem(url: str) -> Any:
    """The fsspec filesystem for `url`, or InvalidField saying what to install."""
    try:
        fsspec = importlib.import_module("fsspec")
    except ImportError as e:
        raise InvalidField(
            f"directory {url!r} is a URL: install the fsspec extra (pip install "
            "'tessera[fsspec]' and the filesystem, e.g. s3fs) or give a local folder",
            field="directory",
            value=url,
        ) from e
    return fsspec.filesystem(url.split("://", 1)[0])
