"""The event log in files: what collectors append to and the core process loads.

Each writer (a collector process, or `tessera serve` itself) appends to its own segment
files under `<data_dir>/log/<writer_id>/`, with group commit: a future resolves only
after the fsync that made its record durable. The core process reads every writer's
files (`reader.py`) and loads them into DuckDB. This package imports pyarrow, never
duckdb: a collector needs no database. See docs/ingest.md.
"""

from __future__ import annotations

from tessera.eventlog.reader import Position, ReadBatch, backlog, read_new, remove_loaded
from tessera.eventlog.records import EVENT_FIELDS, LOG_EVENT_SCHEMA, LOG_REJECTED_SCHEMA
from tessera.eventlog.writer import LogWriter

__all__ = [
    "EVENT_FIELDS",
    "LOG_EVENT_SCHEMA",
    "LOG_REJECTED_SCHEMA",
    "LogWriter",
    "Position",
    "ReadBatch",
    "backlog",
    "read_new",
    "remove_loaded",
]
