"""The only package that imports duckdb: opening the file, migrating, running SQL."""

from tessera.store.connection import Store, open_store

__all__ = ["Store", "open_store"]
