"""The running parts of one Tessera process, built from Settings in one place.

Both the server (create_app) and the CLI (when no server runs) build a Runtime, so
a use case finds the same store, writer and directories whichever edge called it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from tessera.events import importer, source_keys
from tessera.events.collect import Collector
from tessera.events.sources import SourceDirectory
from tessera.events.timestamps import now_micros
from tessera.events.writer import EventWriter
from tessera.pipeline import Pipeline
from tessera.settings import Settings
from tessera.store import Store, open_store

_DAY_MICROS = 86_400 * 1_000_000


@dataclass
class Runtime:
    settings: Settings
    store: Store
    sources: SourceDirectory
    writer: EventWriter
    collector: Collector
    pipeline: Pipeline
    started_at: float

    @classmethod
    def open(cls, settings: Settings, *, in_memory: bool = False) -> Runtime:
        store = open_store(
            None if in_memory else settings.database_path,
            checkpoint_threshold_mb=settings.checkpoint_threshold_mb,
        )
        importer.mark_interrupted(store)  # the store is ours alone: none can still run
        since = None
        if settings.dedupe_window_days is not None:
            since = now_micros() - settings.dedupe_window_days * _DAY_MICROS
        pipeline = Pipeline(store, settings)
        writer = EventWriter(
            store,
            on_commit=pipeline.notify,
            max_queued_events=settings.max_queued_events,
            retry_after_seconds=settings.retry_after_seconds,
            dedupe_since_micros=since,
        )
        pipeline.watch_ingest(lambda: writer.commits)
        # Every change to sources is published for the collector processes (source_keys.py).
        publish = functools.partial(source_keys.publish, settings.source_keys_path)
        sources = SourceDirectory(store, on_change=None if in_memory else publish)
        collector = Collector(
            sources,
            writer,
            max_body_bytes=settings.max_body_bytes,
            max_message_bytes=settings.max_message_bytes,
        )
        return cls(settings, store, sources, writer, collector, pipeline, time.time())

    def close(self) -> None:
        self.pipeline.stop()
        self.writer.stop()
        self.store.close()
