"""The only package that imports duckdb: opening the file, migrating, running SQL."""

from tessera.store.connection import STORE_TROUBLE, QueryFailed, Store, open_store

__all__ = ["STORE_TROUBLE", "QueryFailed", "Store", "open_store"]
