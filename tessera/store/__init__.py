"""The only package that imports duckdb: opening the file, migrating, running SQL."""

from tessera.store.connection import QueryFailed, Store, open_store

__all__ = ["QueryFailed", "Store", "open_store"]
