"""The only package that imports duckdb: opening the file, migrating, running SQL."""

from tessera.store.connection import (
    LATEST_SCHEMA,
    STORE_TROUBLE,
    QueryFailed,
    Store,
    make_private,
    open_store,
    schema_version,
)

__all__ = [
    "LATEST_SCHEMA",
    "STORE_TROUBLE",
    "QueryFailed",
    "Store",
    "make_private",
    "open_store",
    "schema_version",
]
