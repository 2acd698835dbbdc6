"""Writes from many threads to one DuckDB file: serialised, never a conflict error."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from tessera.errors import Conflict
from tessera.store import Store, open_store


def test_threads_updating_one_row_at_once_all_succeed(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    store.execute("CREATE TABLE flags (id INTEGER PRIMARY KEY, on_off BOOLEAN, n INTEGER)")
    store.execute("INSERT INTO flags VALUES (1, TRUE, 0)")

    def flip(n: int) -> None:
        if n % 2:
            store.execute("UPDATE flags SET on_off = ? WHERE id = 1", [n % 4 == 1])
        else:
            with store.transaction():
                row = store.fetch_one("SELECT n FROM flags WHERE id = 1")
                assert row is not None
                store.execute("UPDATE flags SET n = ? WHERE id = 1", [row[0] + 1])

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(flip, range(240)))  # re-raises any "Conflict on update!"
    assert store.fetch_one("SELECT n FROM flags")[0] == 120  # type: ignore[index]
    store.close()


def test_an_appending_transaction_does_not_wait_for_a_serialised_one(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    store.execute("CREATE TABLE log (n INTEGER)")
    # This thread holds the write lock while another appends and commits.
    with store.transaction(), ThreadPoolExecutor(1) as pool:
        pool.submit(_append, store).result(timeout=30)
    assert store.fetch_one("SELECT count(*) FROM log")[0] == 1  # type: ignore[index]
    store.close()


def _append(store: Store) -> None:
    with store.transaction(serialised=False) as appending:
        appending.insert_arrow("log", pa.table({"n": [1]}))


def test_a_taken_unique_name_is_a_conflict(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    store.execute("CREATE TABLE named (id VARCHAR PRIMARY KEY, name VARCHAR UNIQUE)")
    store.execute("INSERT INTO named VALUES ('a', 'shop')")
    with pytest.raises(Conflict, match="name 'shop' is taken"):
        store.execute("INSERT INTO named VALUES ('b', 'shop')")
    store.close()
