"""Backups of a data directory taken while the server runs, and restoring one.

What makes a backup consistent: the store holds, with the events, how far it has loaded
each writer's files of the event log (`log_positions`); the files hold every event a
collector acknowledged (a 200 follows the fsync). So the snapshot copies the store
first, with the loader paused and every write held back after a checkpoint, and then,
the loader still paused (it deletes the segments it has loaded), the log's files. An
event acknowledged before its file is copied is then in the backup: in the store, or in
the files past the store's position, where the restored server's loader finds it. The
collectors keep appending meanwhile; ingest never stops, only the loading waits.

The snapshot is written through a `Sink`: a folder (`tessera backup --to DIR` with no
server running, and restore's source) or a tar stream (GET /api/backup, which the CLI
unpacks into DIR).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from tessera import __version__
from tessera.errors import Conflict, InvalidField, NotFound
from tessera.eventlog import records, segments
from tessera.governance import backups, erasure
from tessera.governance import suppressed as suppressed_list
from tessera.results import Result
from tessera.runtime import Runtime
from tessera.settings import Settings
from tessera.store import make_private, schema_version

MANIFEST = "backup.json"
FORMAT = 1
#: what a data directory holds that a backup leaves out: the running server's files
_TRANSIENT = {"run", "server.json"}
_DATABASE_FILES = {"tessera.duckdb", "tessera.duckdb.wal"}


class Backup(Result):
    """What a backup holds (its manifest, backup.json)."""

    format: int
    version: str
    schema_version: int
    taken_at: str
    seconds: float
    database_bytes: int
    log_files: int
    log_bytes: int
    other_files: int
    last_seq: int


class Restored(Result):
    data_dir: str
    schema_version: int
    taken_at: str
    files: int
    #: people erased again because an erasure recorded after the backup names them
    erased_again: int = 0
    #: suppression entries (salted hashes) added from the lists recorded after the backup
    suppressed_added: int = 0


class Sink(Protocol):
    def add(self, source: Path, name: str) -> int:
        """Copy the file `source` as `name`; returns the bytes copied."""
        ...

    def add_bytes(self, data: bytes, name: str) -> None: ...


class FolderSink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, source: Path, name: str) -> int:
        target = self.folder / name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        size = source.stat().st_size  # what is there now: a log file may still grow
        with source.open("rb") as reading, target.open("wb") as writing:
            copied = _copy(reading, writing, size)
            writing.flush()
            os.fsync(writing.fileno())
        return copied

    def add_bytes(self, data: bytes, name: str) -> None:
        target = self.folder / name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with target.open("wb") as writing:
            writing.write(data)
            writing.flush()
            os.fsync(writing.fileno())


class TarSink:
    def __init__(self, archive: tarfile.TarFile) -> None:
        self.archive = archive

    def add(self, source: Path, name: str) -> int:
        info = self.archive.gettarinfo(str(source), arcname=name)
        info.mode = 0o600
        with source.open("rb") as reading:
            self.archive.addfile(info, reading)  # info.size bytes: a growing file is cut
        return info.size

    def add_bytes(self, data: bytes, name: str) -> None:
        import io

        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        self.archive.addfile(info, io.BytesIO(data))


def _copy(reading: object, writing: object, size: int) -> int:
    left = size
    while left > 0:
        chunk = reading.read(min(left, 1 << 20))  # type: ignore[attr-defined]
        if not chunk:
            break
        writing.write(chunk)  # type: ignore[attr-defined]
        left -= len(chunk)
    return size - left


def take(runtime: Runtime, sink: Sink, folder: Path | None = None) -> Backup:
    """Write a consistent snapshot of `runtime`'s data directory to `sink` (see above),
    and register it (`governance/backups.py`: an erasure reports the backups holding the
    person); `folder` is where it lands, when known."""
    settings = runtime.settings
    started = time.monotonic()
    moment = datetime.now(UTC)
    taken_at = moment.isoformat(timespec="seconds")
    database_bytes = log_bytes = log_files = others = 0
    with runtime.loader.paused(), runtime.writer.paused():
        last_seq = runtime.writer.last_seq
        with runtime.store.exclusive() as database:
            if database is None:
                raise InvalidField("an in-memory store cannot be backed up", field="data_dir")
            database_bytes += sink.add(database, database.name)
            wal = database.with_name(database.name + ".wal")
            if wal.exists() and wal.stat().st_size:
                database_bytes += sink.add(wal, wal.name)
        version = schema_version(runtime.store)
        for path in _files(settings.log_dir):
            if path.name == "writer.lock":
                continue
            # Whole records only: a collector may be half-way through appending one (not
            # acknowledged yet); a segment with none (just begun) holds nothing to keep.
            data = path.read_bytes()
            whole = len(data)
            if path.suffix == segments.SUFFIX:
                whole = records.complete_length(data)
                if whole <= len(records.SEGMENT_MAGIC):
                    continue
            sink.add_bytes(data[:whole], str(path.relative_to(settings.data_dir)))
            log_bytes += whole
            log_files += 1
    for path in _files(settings.data_dir):
        relative = path.relative_to(settings.data_dir)
        if relative.parts[0] in {*_TRANSIENT, "log"} or relative.name in _DATABASE_FILES:
            continue
        try:
            sink.add(path, str(relative))
        except FileNotFoundError:  # gone since listed (a spool file rolled): not needed
            continue
        others += 1
    backup = Backup(
        format=FORMAT,
        version=__version__,
        schema_version=version,
        taken_at=taken_at,
        seconds=round(time.monotonic() - started, 3),
        database_bytes=database_bytes,
        log_files=log_files,
        log_bytes=log_bytes,
        other_files=others,
        last_seq=last_seq,
    )
    sink.add_bytes(orjson.dumps(backup.model_dump(), option=orjson.OPT_INDENT_2), MANIFEST)
    backups.register(runtime.store, moment.replace(tzinfo=None), folder, last_seq)
    return backup


def to_folder(runtime: Runtime, folder: Path) -> Backup:
    """A snapshot into `folder`, which must be new or empty and outside the data
    directory."""
    prepare(folder, runtime.settings)
    return take(runtime, FolderSink(folder), folder)


def prepare(folder: Path, settings: Settings) -> None:
    """Check a backup's target folder, and make it (owner-only)."""
    folder = folder.expanduser().resolve()
    if folder.is_relative_to(settings.data_dir.resolve()):
        raise InvalidField(
            f"the backup folder {folder} is inside the data directory {settings.data_dir}: "
            "give a folder outside it (a backup of the folder would contain itself)",
            field="to",
            value=str(folder),
        )
    check_empty(folder)
    make_private(folder)


def check_folder_note(folder: str | None) -> Path | None:
    """The folder a client says it unpacks a streamed backup into: an absolute path, or
    InvalidField. Only noted (`governance/backups.py` reads it only when it holds a
    backup's manifest)."""
    if folder is None or folder == "":
        return None
    if len(folder) > 4096 or "\x00" in folder or not folder.startswith("/"):
        raise InvalidField(
            f"folder must be an absolute path of at most 4096 characters, got {folder[:80]!r}",
            field="folder",
            value=folder[:80],
        )
    return Path(folder)


def check_empty(folder: Path) -> None:
    """A backup goes to a new folder, or an empty one."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Conflict(
            f"the backup folder {folder} is not empty: give a new folder for each backup",
            field="to",
            value=str(folder),
        )


def read_manifest(folder: Path) -> Backup:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise NotFound(
            f"{folder} holds no {MANIFEST}: it is not a Tessera backup (or the copy was cut "
            "short); give the folder `tessera backup --to` wrote"
        )
    return Backup.model_validate(orjson.loads(manifest.read_bytes()))


def restore(
    folder: Path, settings: Settings, *, replace: bool = False, suppressed: Sequence[Path] = ()
) -> Restored:
    """Rebuild `settings.data_dir` from the backup in `folder`. Refuses a data directory
    that already holds a store unless `replace` (its files are then removed first); the
    server must not be running on it (its lock would refuse the start anyway).

    Erasures recorded after the backup are applied again before anything reads it: the
    suppression lists in the backup's `erasures.json`, in the replaced directory, and in
    `suppressed` (a `suppressed.json` of the live directory) name the people to erase
    (`governance/backups.py`)."""
    backup = read_manifest(folder)
    target = settings.data_dir
    if settings.database_path.exists() and not replace:
        raise Conflict(
            f"the data directory {target} already holds a store: restore into a new "
            "TESSERA_DATA_DIR, or pass --replace to overwrite it (stop its server first)",
            field="data_dir",
            value=str(target),
        )
    if settings.server_file_path.exists():
        raise Conflict(
            f"a server is running on {target} (server.json): stop it before restoring",
            field="data_dir",
            value=str(target),
        )
    # Read before the replaced directory's files go.
    lists = backups.documents(folder, settings.suppression_path, suppressed)
    if replace and target.exists():
        for child in target.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    make_private(target)
    files = 0
    for path in _files(folder):
        relative = path.relative_to(folder)
        if str(relative) in (MANIFEST, backups.ERASURES):
            continue
        FolderSink(target).add(path, str(relative))
        files += 1
    erased_again, added = _erase_again(settings, lists) if lists else (0, 0)
    return Restored(
        data_dir=str(target),
        schema_version=backup.schema_version,
        taken_at=backup.taken_at,
        files=files,
        erased_again=erased_again,
        suppressed_added=added,
    )


def _erase_again(settings: Settings, lists: list[dict[str, Any]]) -> tuple[int, int]:
    """Erase, in the restored directory, everyone the suppression lists name; publish the
    merged list so collectors drop their events from the first request."""
    runtime = Runtime.open(settings)
    try:
        runtime.pipeline.process()  # what the log held past the store's position
        identifiers, added = backups.matches(runtime.store, lists)
        for identifier in identifiers:
            erasure.erase(runtime, identifier)
        suppressed_list.publish(runtime.store, settings.suppression_path)
    finally:
        runtime.close()
    return len(identifiers), added


def _files(folder: Path) -> Iterator[Path]:
    if not folder.exists():
        return
    for root, directories, names in os.walk(folder):
        directories.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file():
                yield path
