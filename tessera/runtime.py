"""The running parts of one Tessera process, built from Settings in one place.

Both the server (create_app) and the CLI (when no server runs) build a Runtime, so
a use case finds the same store, writer and directories whichever edge called it.
The collect path appends to this process's files in the event log (`sink`); the
`loader` thread loads every writer's files into DuckDB through the `writer`, which
imports also use, and wakes the pipeline.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tessera.activation.engine import Activation
from tessera.events import importer, source_keys
from tessera.events.collect import Collector
from tessera.events.loader import LogLoader
from tessera.events.screens import Screens
from tessera.events.sink import LogSink
from tessera.events.sources import SourceDirectory
from tessera.events.timestamps import now_micros
from tessera.events.writer import EventWriter
from tessera.governance.retention import RetentionSchedule
from tessera.governance.suppression import PublishedSuppression
from tessera.personalize.serving import Personalizer
from tessera.pipeline import Pipeline
from tessera.plans.screen import PlanScreen
from tessera.settings import MIB, Settings
from tessera.store import Store, open_store

_DAY_MICROS = 86_400 * 1_000_000
#: the writer id of `tessera serve`'s own collect path in the event log
SERVE_WRITER_ID = "serve"


@dataclass
class Runtime:
    settings: Settings
    store: Store
    sources: SourceDirectory
    writer: EventWriter
    sink: LogSink
    loader: LogLoader
    collector: Collector
    pipeline: Pipeline
    started_at: float
    #: The destinations' delivery workers; started by the server only (`app.py` lifespan).
    activation: Activation | None = None
    #: The decision API's memory (`personalize/serving.py`); its thread starts with a server.
    personalizer: Personalizer = field(init=False)
    #: Retention every TESSERA_RETENTION_INTERVAL_SECONDS; started by the server only.
    retention: RetentionSchedule | None = field(default=None, init=False)
    closed: bool = field(default=False, init=False)
    #: whether each collector process is alive; `tessera serve` sets it when it starts
    #: them (server.py), so readiness and the metrics can tell
    collector_processes: Callable[[], list[bool]] = field(default=list, init=False)

    @classmethod
    def open(cls, settings: Settings, *, in_memory: bool = False) -> Runtime:
        """Open the store and the log. What the log holds that the store lacks (acked
        before a crash) is loaded here before anything reads the store."""
        store = open_store(
            None if in_memory else settings.database_path,
            checkpoint_threshold_mb=settings.checkpoint_threshold_mb,
        )
        importer.mark_interrupted(store)  # the store is ours alone: none can still run
        since = None
        if settings.dedupe_window_days is not None:
            since = now_micros() - settings.dedupe_window_days * _DAY_MICROS
        pipeline = Pipeline(store, settings)
        # Suppression at the load too (imports, and the instant before a collector reads a
        # new list), then tracking plans.
        suppression = PublishedSuppression(settings.suppression_path)
        screens = Screens(suppression, PlanScreen(store))
        writer = EventWriter(store, dedupe_since_micros=since, screen=screens)
        sink = LogSink(
            settings.log_dir,
            SERVE_WRITER_ID,
            max_queued_events=settings.max_queued_events,
            retry_after_seconds=settings.retry_after_seconds,
            segment_bytes=settings.log_segment_mb * MIB,
        )
        loader = LogLoader(writer, settings.log_dir, on_load=pipeline.notify)
        sink.on_durable = loader.wake
        loader.catch_up()
        # Requests answered by this process compete with the pipeline for its GIL; a
        # collector process's do not (pipeline/loop.py): only the former slow it down.
        pipeline.watch_ingest(lambda: sink.log.syncs, loader.backlog)
        # Every change to sources is published for the collector processes (source_keys.py).
        publish = functools.partial(source_keys.publish, settings.source_keys_path)
        sources = SourceDirectory(store, on_change=None if in_memory else publish)
        collector = Collector(
            sources,
            sink,
            max_body_bytes=settings.max_body_bytes,
            max_message_bytes=settings.max_message_bytes,
            suppression=suppression,
        )
        activation = Activation(store, settings.data_dir, settings.consent_policies())
        runtime = cls(
            settings,
            store,
            sources,
            writer,
            sink,
            loader,
            collector,
            pipeline,
            time.time(),
            activation,
        )
        runtime.personalizer = Personalizer(runtime)
        return runtime

    def definitions_changed(self) -> None:
        """See `Context.definitions_changed`."""
        self.personalizer.definitions_changed()

    def start(self) -> None:
        """Start the threads of a server: the log's group commit, the loader, the
        pipeline and the destinations' delivery workers."""
        self.sink.start()
        self.loader.start()
        self.pipeline.start()
        if self.activation is not None:
            self.activation.start()
        self.personalizer.start()
        self.retention = RetentionSchedule(self, self.settings.retention_interval_seconds)
        self.retention.start()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.retention is not None:
            self.retention.stop()
        if self.activation is not None:
            self.activation.stop()
        self.personalizer.stop()
        self.pipeline.stop()
        self.sink.stop()
        self.loader.stop()
        self.loader.catch_up()  # what this process acknowledged, into the store
        self.store.close()
