"""A DuckDB file, opened once per process, with a cursor per thread.

DuckDB allows one writing process per file (ARCHITECTURE §3). Inside that process
every thread gets its own cursor, so the writer thread and the request handlers
never share one connection object.

Writes are serialised inside the process. DuckDB's transactions are optimistic: two
that change one row at once do not wait for each other, the second fails ("Conflict on
update!"), and two admins enabling and disabling one source at once got 500s. So every
`execute()` and `transaction()` holds one lock, except the group-commit writer's
transactions (`serialised=False`): they only append events, which conflict with
nothing, and ingest must never wait behind an admin write or a pipeline batch.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from tessera import __version__
from tessera.errors import Conflict, SchemaTooNew, StoreLocked, StoreUnavailable
from tessera.store.migrations import MIGRATIONS

#: the suffix of the new database file while `Store.rewrite` writes it
REWRITE_SUFFIX = ".rewrite"
Params = Sequence[Any] | dict[str, Any] | None
log = logging.getLogger(__name__)
#: Files and folders Tessera creates are its owner's alone: they hold customer data.
PRIVATE_UMASK = 0o077
_DUPLICATE = re.compile(r'Duplicate key "(?P<column>[^:"]+): (?P<value>.*)" violates')
#: What a statement that DuckDB refuses raises (a conversion, a bind, an overflow...):
#: for callers that run SQL built from definitions (segments) and isolate its failures.
QueryFailed = duckdb.Error
#: The ones that are the database's trouble, not the statement's (a write conflict, the
#: disk, memory, an interrupted or closed connection): worth retrying, never a verdict on
#: the SQL.
STORE_TROUBLE: tuple[type[Exception], ...] = (
    duckdb.TransactionException, duckdb.IOException, duckdb.OutOfMemoryException,
    duckdb.ConnectionException, duckdb.FatalException, duckdb.InterruptException,
)  # fmt: skip


class Store:
    """One open DuckDB database. Feature packages pass it SQL and parameters."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        path: Path | None,
        *,
        checkpoint_threshold_mb: int = 256,
    ) -> None:
        self._root = connection
        self.path = path
        self._threshold_mb = checkpoint_threshold_mb
        self._local = threading.local()
        self._lock = threading.Lock()
        # Re-entrant: a transaction's own execute() calls take it again.
        self._write_lock = threading.RLock()
        # Every thread's cursor, so close() can close them all: one left open keeps the
        # database alive until the interpreter tears down that thread's locals, and DuckDB
        # shutting down then (checkpointing, re-taking the GIL) aborted the process at exit
        # ("terminate called ... exception not rethrown"), seen twice in `tessera demo`.
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        # Every use of the database passes this gate; `rewrite` closes it to swap the file.
        self._gate = Gate()
        self._generation = 0

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None or getattr(self._local, "generation", -1) != self._generation:
            with self._lock:
                cursor = self._root.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
            self._local.generation = self._generation
        return cursor

    def execute(self, sql: str, params: Params = None) -> None:
        """Run a statement for its effect, after any other thread's write (see above)."""
        with self._gate.shared(), self._serialised(), _taken_is_conflict():
            self._cursor().execute(sql, params)

    def fetch_all(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        with self._gate.shared():
            return self._cursor().execute(sql, params).fetchall()

    def fetch_all_yielding(
        self, sql: str, params: Params = None, chunk_rows: int = 2_000
    ) -> list[tuple[Any, ...]]:
        """`fetch_all` for large results read beside requests being served: the rows are
        made into Python objects `chunk_rows` at a time, letting other threads run between
        chunks. One `fetchall()` of 100,000 rows converts them in a single call holding the
        GIL for its whole length, and every request waits behind it (measured: the
        decision API's p99 at 500 req/s was the length of its memory's refresh)."""
        rows: list[tuple[Any, ...]] = []
        with self._gate.shared():
            result = self._cursor().execute(sql, params)
            while chunk := result.fetchmany(chunk_rows):
                rows.extend(chunk)
                time.sleep(0)  # give the GIL away: a waiting request runs now
        return rows

    def fetch_one(self, sql: str, params: Params = None) -> tuple[Any, ...] | None:
        """The first row, with the result read to its end.

        A result left unread keeps its cursor's read transaction open, and while it is
        open DuckDB counts every later committed update or schema change as a write still
        active: CHECKPOINT then refuses ("other write transactions active"), so the
        write-ahead log is never folded in and `rewrite` fails (measured: a background
        thread's idle cursor, last used for `fetch_one`, made erasures end partly failed).
        A second `fetchone()` reaching the end closes it; a query with more rows is
        drained (ask for them with LIMIT 1 instead).
        """
        with self._gate.shared():
            result = self._cursor().execute(sql, params)
            row = result.fetchone()
            if row is not None and result.fetchone() is not None:
                result.fetchall()
            return row

    def fetch_dicts(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        with self._gate.shared():
            cursor = self._cursor().execute(sql, params)
            columns = [d[0] for d in cursor.description or []]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def fetch_arrow(self, sql: str, params: Params = None) -> Any:
        """The whole result as a `pyarrow.Table`, made in DuckDB's C++: for results of
        many rows read beside requests being served and used column-wise. Python objects
        are made only for what the caller takes out (100,000 rows through `fetchmany`
        held the GIL 0.6 s of a 0.85 s refresh of the decision memory)."""
        with self._gate.shared():
            return self._cursor().sql(sql, params=params).to_arrow_table()

    def fetch_numpy(self, sql: str, params: Params = None) -> dict[str, Any]:
        """Column arrays, for bulk loads such as the dedupe index."""
        with self._gate.shared():
            return self._cursor().execute(sql, params).fetchnumpy()

    @contextmanager
    def stream_arrow(
        self, sql: str, params: Params = None, batch_rows: int = 100_000
    ) -> Iterator[Any]:
        """A `pyarrow.RecordBatchReader` over the result, streamed as DuckDB computes it, on
        a cursor of its own (closed on leaving): memory stays at a batch plus DuckDB's
        buffers whatever the result's size. A DB-API result (`execute`) is materialised
        whole inside DuckDB before its first batch (1M events: 1.9 GB against 0.8 GB
        streamed); with the writer's buffers, an export of 10M events reached 23 GB and was
        killed by the kernel. While the stream is open, a `rewrite` waits for it."""
        with self._gate.shared():
            with self._lock:
                cursor = self._root.cursor()
            try:
                yield cursor.sql(sql, params=params).to_arrow_reader(batch_rows)
            finally:
                cursor.close()

    def insert_arrow(self, table: str, data: Any) -> None:
        """Append an Arrow table whose columns match `table` in order.

        `table` is a name from our own schema, never user input.
        """
        with self._gate.shared():
            cursor = self._cursor()
            cursor.register("_incoming", data)
            try:
                with _taken_is_conflict():
                    cursor.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
            finally:
                cursor.unregister("_incoming")

    def rewrite(self, *, wait_seconds: float = 30.0) -> Rewritten:
        """Copy the whole database into a new file and swap it in for the old one.

        DuckDB keeps deleted rows in its file until their blocks are rewritten, and a freed
        block keeps its old bytes until it is reused: after an erasure the person's bytes are
        still in `tessera.duckdb` (measured). `COPY FROM DATABASE` writes only the live rows
        (tables, constraints, indexes and sequences) into a fresh file, which replaces the
        old one by rename, so no file of the data directory holds the erased bytes.

        Every other use of the store waits at the gate meanwhile (at most `wait_seconds`
        for the ones inside to finish, else StoreUnavailable and nothing changed).
        Crash-safe: until the rename the old file is whole and the new one is a temporary
        that the next `open_store` deletes; the new file is fsync'd before the rename, and
        the old file's write-ahead log is folded in (checked) before it is closed.
        """
        if self.path is None:
            return Rewritten(0, 0)
        path = self.path
        temporary = path.with_name(path.name + REWRITE_SUFFIX)
        with self._gate.exclusive(wait_seconds):
            before = path.stat().st_size
            _remove_rewrite_leftovers(path)
            self._root.execute("CHECKPOINT")
            name = self._root.execute("SELECT current_database()").fetchone()
            assert name is not None
            # Names of our own making (the file's stem, a fixed alias), quoted as identifiers;
            # ATTACH takes no bound parameters.
            quoted = '"' + str(name[0]).replace('"', '""') + '"'
            target = "'" + str(temporary).replace("'", "''") + "'"
            self._root.execute(f"ATTACH {target} AS tessera_rewrite")
            try:
                self._root.execute(f"COPY FROM DATABASE {quoted} TO tessera_rewrite")
            finally:
                self._root.execute("DETACH tessera_rewrite")
            self._close_connections()
            wal = path.with_name(path.name + ".wal")
            if wal.exists() or temporary.with_name(temporary.name + ".wal").exists():
                # The old log not folded in: swapping now could lose or replay it.
                self._reopen(path)
                temporary.unlink(missing_ok=True)
                raise StoreUnavailable(
                    "the database could not be compacted (its write-ahead log was not folded "
                    "into the file on close); nothing changed: retry the request"
                )
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            descriptor = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            self._reopen(path)
            return Rewritten(before, path.stat().st_size)

    def _close_connections(self) -> None:
        with self._lock:
            for cursor in self._cursors:
                with suppress(duckdb.Error):
                    cursor.close()
            self._cursors.clear()
        self._root.close()

    def _reopen(self, path: Path) -> None:
        self._root = duckdb.connect(str(path))
        _configure(self._root, self._threshold_mb)
        self._generation += 1

    @contextmanager
    def transaction(self, *, serialised: bool = True) -> Iterator[Store]:
        """BEGIN ... COMMIT on this thread's cursor; ROLLBACK on any error.

        Holds the write lock from BEGIN to the end: a DuckDB transaction's snapshot dates
        from its start, so waiting for the lock later would not avoid the conflict.
        `serialised=False` is for transactions that only append (the event writer's).
        """
        with self._gate.shared(), self._transaction(serialised) as store:
            yield store

    @contextmanager
    def _transaction(self, serialised: bool) -> Iterator[Store]:
        cursor = self._cursor()
        with self._serialised() if serialised else self._appending():
            cursor.execute("BEGIN TRANSACTION")
            try:
                yield self
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if getattr(self._local, "appending", False):
            yield
            return
        with self._write_lock:
            yield

    @contextmanager
    def _appending(self) -> Iterator[None]:
        self._local.appending = True
        try:
            yield
        finally:
            self._local.appending = False

    @contextmanager
    def exclusive(self) -> Iterator[Path | None]:
        """Hold every serialised write back, fold the write-ahead log into the file, and
        yield the file's path: while this is held the file (and its .wal, should a
        reader's open transaction have kept the checkpoint from running) does not change.
        For a backup; the caller also keeps the appending writer out (EventWriter)."""
        with self._write_lock:
            with suppress(duckdb.Error):  # a reader's open transaction: the .wal is copied
                self._cursor().execute("CHECKPOINT")
            yield self.path

    def close(self) -> None:
        """Checkpoint (so the next start replays no log) and close."""
        # If another transaction is open the checkpoint fails; the log is then
        # replayed on the next start, which is slower but loses nothing.
        with suppress(duckdb.Error):
            self._root.execute("CHECKPOINT")
        self._close_connections()


@dataclass(frozen=True, slots=True)
class Rewritten:
    """The database file's size before and after `Store.rewrite`, in bytes."""

    bytes_before: int
    bytes_after: int


class Gate:
    """Many threads in at once (`shared`), or one alone (`exclusive`), for swapping the
    database file. A thread already inside may enter again while the gate closes (a
    transaction's own statements), so it never waits for itself."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._inside = 0
        self._closed = False
        self._local = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._condition:
                while self._closed:
                    self._condition.wait()
                self._inside += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._condition:
                    self._inside -= 1
                    self._condition.notify_all()

    @contextmanager
    def exclusive(self, wait_seconds: float) -> Iterator[None]:
        with self._condition:
            while self._closed:
                self._condition.wait()
            self._closed = True
            deadline = time.monotonic() + wait_seconds
            while self._inside > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._closed = False
                    self._condition.notify_all()
                    raise StoreUnavailable(
                        f"the database stayed busy for {wait_seconds:g} s; nothing changed: "
                        "retry the request"
                    )
                self._condition.wait(left)
        try:
            yield
        finally:
            with self._condition:
                self._closed = False
                self._condition.notify_all()


def _remove_rewrite_leftovers(path: Path) -> None:
    """A rewrite's temporary file left by a crash (the old file is whole: see `rewrite`)."""
    temporary = path.with_name(path.name + REWRITE_SUFFIX)
    for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
        leftover.unlink(missing_ok=True)


@contextmanager
def _taken_is_conflict() -> Iterator[None]:
    """A unique key already taken is a Conflict (409), not a failure: it is how the loser
    of two simultaneous creates of one name (a source, a segment...) finds out, after both
    checked that the name was free."""
    try:
        yield
    except duckdb.ConstraintException as e:
        found = _DUPLICATE.search(str(e))
        if found is None:
            raise
        column, value = found["column"], found["value"]
        raise Conflict(
            f"{column} {value!r} is taken (perhaps by a request made at the same moment); "
            "use the existing one or pick another",
            field=column,
            value=value,
        ) from e


def open_store(path: Path | None, *, checkpoint_threshold_mb: int = 256) -> Store:
    """Open (creating if needed) and migrate the database at `path`; None is in-memory.

    DuckDB folds its write-ahead log into the file (a checkpoint) when the log passes
    `checkpoint_threshold_mb`. Its default, 16 MB, checkpoints every ~30,000 events
    under load and rewrites the open row group each time: measured, ingest ran at a
    third of the rate and single commits stalled for 1.6 s. 256 MB amortises that;
    the cost is a longer log replay after a crash.

    The data directory is made owner-only (see `make_private`) before the file is opened.

    Raises StoreLocked when another process (usually `tessera serve`) holds the file.
    """
    if path is not None:
        make_private(path.parent, [path, path.with_name(path.name + ".wal")])
        _remove_rewrite_leftovers(path)
    try:
        connection = duckdb.connect(str(path) if path is not None else ":memory:")
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise StoreLocked(
                f"the database {path} is in use by another process; stop it, or run this "
                "command while `tessera serve` runs so it goes through the server"
            ) from e
        raise StoreUnavailable(f"cannot open the database {path}: {e}") from e
    _configure(connection, checkpoint_threshold_mb)
    store = Store(connection, path, checkpoint_threshold_mb=checkpoint_threshold_mb)
    _migrate(store)
    return store


def _configure(connection: duckdb.DuckDBPyConnection, checkpoint_threshold_mb: float) -> None:
    connection.execute(f"SET checkpoint_threshold = '{int(checkpoint_threshold_mb)}MB'")
    # Every time in the store is UTC without a zone. DuckDB casts an instant (a zoned
    # Python datetime, an Arrow or Parquet timestamp with a zone) to TIMESTAMP in its
    # TimeZone setting, which defaults to the machine's: on a server set to Paris, 12:00
    # UTC would be stored as 13:00. GLOBAL, so every cursor of this database has it.
    connection.execute("SET GLOBAL TimeZone = 'UTC'")


def make_private(folder: Path, files: Sequence[Path] = ()) -> None:
    """Make `folder` (created if needed) mode 0700 and those of `files` that exist 0600, and
    set this process's umask to 077 so every file and folder it creates from now on (the
    DuckDB file and its WAL, reject files, uploads, exports, server.json) is owner-only
    whatever umask it was started with. Every process that opens a data directory comes
    through here (`open_store`), the server first of all."""
    os.umask(PRIVATE_UMASK)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for target, mode in [(folder, 0o700), *((file, 0o600) for file in files if file.exists())]:
        try:
            os.chmod(target, mode)
        except PermissionError:  # someone else's folder, e.g. a mounted volume
            log.warning("cannot make %s owner-only (mode %o): it is not ours", target, mode)


#: the schema this code writes: the last migration's number
LATEST_SCHEMA = max(version for version, _ in MIGRATIONS)


def schema_version(store: Store) -> int:
    """The schema the open database is at (0: a new, empty one)."""
    row = store.fetch_one("SELECT max(version) FROM schema_version")
    return int(row[0]) if row and row[0] is not None else 0


def _migrate(store: Store) -> None:
    """Bring the database to LATEST_SCHEMA, one migration per transaction. A database
    from a newer Tessera (a schema this code does not know) is refused, untouched."""
    store.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    current = schema_version(store)
    if current > LATEST_SCHEMA:
        raise SchemaTooNew(
            f"the database {store.path} is at schema {current}, written by a newer Tessera; "
            f"this one ({__version__}) knows schemas up to {LATEST_SCHEMA}: upgrade with "
            "`pip install --upgrade tessera`, or `tessera restore` a backup taken before "
            "the upgrade into a new TESSERA_DATA_DIR"
        )
    if current and current < LATEST_SCHEMA:
        log.warning(
            "upgrading the database %s from schema %d to %d", store.path, current, LATEST_SCHEMA
        )
    # Every migration not recorded yet, in order: not only those above the highest one, so
    # a database made while migrations were numbered apart (two branches) misses none.
    applied = {int(row[0]) for row in store.fetch_all("SELECT version FROM schema_version")}
    for version, sql in sorted(MIGRATIONS, key=lambda migration: migration[0]):
        if version in applied:
            continue
        with store.transaction():
            for statement in _statements(sql):
                store.execute(statement)
            store.execute("INSERT INTO schema_version VALUES (?)", [version])


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
