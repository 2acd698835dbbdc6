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
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from tessera.errors import Conflict, StoreLocked, StoreUnavailable
from tessera.store.migrations import MIGRATIONS

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

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self._root = connection
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        # Re-entrant: a transaction's own execute() calls take it again.
        self._write_lock = threading.RLock()
        # Every thread's cursor, so close() can close them all: one left open keeps the
        # database alive until the interpreter tears down that thread's locals, and DuckDB
        # shutting down then (checkpointing, re-taking the GIL) aborted the process at exit
        # ("terminate called ... exception not rethrown"), seen twice in `tessera demo`.
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._root.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor

    def execute(self, sql: str, params: Params = None) -> None:
        """Run a statement for its effect, after any other thread's write (see above)."""
        with self._serialised(), _taken_is_conflict():
            self._cursor().execute(sql, params)

    def fetch_all(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        return self._cursor().execute(sql, params).fetchall()

    def fetch_one(self, sql: str, params: Params = None) -> tuple[Any, ...] | None:
        return self._cursor().execute(sql, params).fetchone()

    def fetch_dicts(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        cursor = self._cursor().execute(sql, params)
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def fetch_numpy(self, sql: str, params: Params = None) -> dict[str, Any]:
        """Column arrays, for bulk loads such as the dedupe index."""
        return self._cursor().execute(sql, params).fetchnumpy()

    def fetch_arrow(self, sql: str, params: Params = None, batch_rows: int = 100_000) -> Any:
        """A `pyarrow.RecordBatchReader` over the result: exports stream the events in
        batches of `batch_rows`, never the whole table in memory."""
        # DuckDB warns that a DB-API result copies the rows into Arrow: one batch at a
        # time here, which is the point. Its suggested `sql()` relation stays open on the
        # cursor and refuses the next query, so the warning is silenced rather than heeded.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Arrow output on a DB-API result")
            return self._cursor().execute(sql, params).to_arrow_reader(batch_rows)

    def insert_arrow(self, table: str, data: Any) -> None:
        """Append an Arrow table whose columns match `table` in order.

        `table` is a name from our own schema, never user input.
        """
        cursor = self._cursor()
        cursor.register("_incoming", data)
        try:
            with _taken_is_conflict():
                cursor.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
        finally:
            cursor.unregister("_incoming")

    @contextmanager
    def transaction(self, *, serialised: bool = True) -> Iterator[Store]:
        """BEGIN ... COMMIT on this thread's cursor; ROLLBACK on any error.

        Holds the write lock from BEGIN to the end: a DuckDB transaction's snapshot dates
        from its start, so waiting for the lock later would not avoid the conflict.
        `serialised=False` is for transactions that only append (the event writer's).
        """
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

    def close(self) -> None:
        """Checkpoint (so the next start replays no log) and close."""
        # If another transaction is open the checkpoint fails; the log is then
        # replayed on the next start, which is slower but loses nothing.
        with suppress(duckdb.Error):
            self._root.execute("CHECKPOINT")
        with self._lock:
            for cursor in self._cursors:
                with suppress(duckdb.Error):
                    cursor.close()
            self._cursors.clear()
        self._root.close()


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
    try:
        connection = duckdb.connect(str(path) if path is not None else ":memory:")
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise StoreLocked(
                f"the database {path} is in use by another process; stop it, or run this "
                "command while `tessera serve` runs so it goes through the server"
            ) from e
        raise StoreUnavailable(f"cannot open the database {path}: {e}") from e
    connection.execute(f"SET checkpoint_threshold = '{int(checkpoint_threshold_mb)}MB'")
    store = Store(connection, path)
    _migrate(store)
    return store


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


def _migrate(store: Store) -> None:
    store.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = store.fetch_one("SELECT max(version) FROM schema_version")
    current = row[0] if row and row[0] is not None else 0
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        with store.transaction():
            for statement in _statements(sql):
                store.execute(statement)
            store.execute("INSERT INTO schema_version VALUES (?)", [version])


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
