"""`/metrics`: what a running Tessera is doing, in the Prometheus text format.

Everything is counted in the core process, which sees every event whichever process
took it: the collector processes append to the log in files and the core's loader
loads them (events/loader.py), so the loader's commits are where events are counted as
accepted, duplicate or rejected per source, and where the ingest latency (receipt by a
collector to commit in the store) is measured. No multiprocess mode is needed: the
collectors hold nothing worth counting that the log does not show.

Counters start at zero with the process, as Prometheus expects (`rate()` handles the
restart); the destination figures are read from the delivery log at each scrape, so they
are totals since the destination was created. Histograms are accumulated with numpy
from each load's array of latencies (an `observe()` per event would cost more than the
load at 20,000 events/s).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tessera import __version__
from tessera.activation import deliveries
from tessera.events.writer import Loaded
from tessera.runtime import Runtime
from tessera.segments import failures

#: seconds from an event's receipt to its commit in the store
INGEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: seconds one pipeline step takes (a batch, a segment flush, a whole refresh)
STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: seconds a decision (personalization) answer takes
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Histogram:
    """Cumulative bucket counts and a sum, added to in bulk."""

    bounds: tuple[float, ...]
    counts: np.ndarray = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        # side="left": a value equal to a bound belongs to that bound's bucket (le).
        self.counts += np.bincount(
            np.searchsorted(self.bounds, values, side="left"), minlength=len(self.counts)
        )
        self.total += float(values.sum())

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = np.cumsum(self.counts)
        labels = [*(_bound(b) for b in self.bounds), "+Inf"]
        return [(label, float(count)) for label, count in zip(labels, cumulative, strict=True)]


def _bound(value: float) -> str:
    return repr(float(value))


#: A hook for what other features report: returns (label value, value) pairs.
Samples = Callable[[], Iterable[tuple[str, float]]]


class Metrics(Collector):
    """The core's metrics: counted from the loader and the pipeline, read from the runtime
    at each scrape. It subscribes to the runtime's event writer and pipeline."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._by_source: dict[str, list[int]] = {}  # source id -> [accepted, duplicate, rejected]
        self._ingest = Histogram(INGEST_BUCKETS)
        self._steps: dict[str, Histogram] = {}
        self._step_failures: dict[str, int] = {}
        self._decisions = Histogram(DECISION_BUCKETS)
        #: privacy's data subject requests by state, when that feature registers it
        self.dsr_states: Samples | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        runtime.writer.observers.append(self.loaded)
        runtime.pipeline.timing_observers.append(self.step)

    # -- what the running parts report ---------------------------------------------

    def loaded(self, loaded: Loaded) -> None:
        with self._lock:
            for source, accepted, duplicates, rejected in loaded.by_source:
                counts = self._by_source.setdefault(source, [0, 0, 0])
                counts[0] += accepted
                counts[1] += duplicates
                counts[2] += rejected
            if loaded.ingest_seconds is not None:
                self._ingest.add(loaded.ingest_seconds)

    def step(self, step: str, seconds: float, succeeded: bool) -> None:
        with self._lock:
            histogram = self._steps.setdefault(step, Histogram(STEP_BUCKETS))
            histogram.add(np.array([seconds]))
            if not succeeded:
                self._step_failures[step] = self._step_failures.get(step, 0) + 1

    def decision(self, seconds: float) -> None:
        """The hook for the decision (personalization) API: one answer took `seconds`."""
        with self._lock:
            self._decisions.add(np.array([seconds]))

    # -- the exposition ------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime
        names = {source.id: source.name for source in runtime.sources.list()}
        yield from self._ingest_families(names)
        yield from self._pipeline_families(runtime)
        yield from self._destination_families(runtime)
        yield from self._hooks()
        info = GaugeMetricFamily("tessera_build_info", "The running version.", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        up = GaugeMetricFamily(
            "tessera_collector_processes", "Collector processes by state.", labels=["state"]
        )
        alive = runtime.collector_processes()
        up.add_metric(["up"], float(sum(alive)))
        up.add_metric(["down"], float(len(alive) - sum(alive)))
        yield up

    def _ingest_families(self, names: dict[str, str]) -> Iterator[Metric]:
        families = {
            kind: CounterMetricFamily(
                f"tessera_events_{kind}",
                description,
                labels=["source"],
            )
            for kind, description in (
                ("accepted", "Events loaded into the store, per source."),
                ("duplicate", "Events dropped as a repeated messageId, per source."),
                ("rejected", "Messages refused (the dead-letter table), per source."),
            )
        }
        with self._lock:
            counts = {source: list(values) for source, values in self._by_source.items()}
            ingest = (self._ingest.buckets(), self._ingest.total)
        for source, values in sorted(counts.items()):
            name = names.get(source, source or "unknown")
            for kind, value in zip(("accepted", "duplicate", "rejected"), values, strict=True):
                families[kind].add_metric([name], float(value))
        yield from families.values()
        latency = HistogramMetricFamily(
            "tessera_ingest_latency_seconds",
            "Seconds from an event's receipt by a collector to its commit in the store.",
        )
        latency.add_metric([], ingest[0], ingest[1])
        yield latency

    def _pipeline_families(self, runtime: Runtime) -> Iterator[Metric]:
        lag = runtime.pipeline.lag()
        events = GaugeMetricFamily(
            "tessera_pipeline_lag_events", "Events acknowledged and not yet processed."
        )
        events.add_metric([], float(lag.lag_events))
        yield events
        seconds = GaugeMetricFamily(
            "tessera_pipeline_lag_seconds", "Age of the oldest event not yet processed."
        )
        seconds.add_metric([], float(lag.lag_seconds))
        yield seconds
        backlog = GaugeMetricFamily(
            "tessera_log_backlog_events", "Events in the log's files not yet loaded."
        )
        backlog.add_metric([], float(lag.log_backlog_events))
        yield backlog
        steps = HistogramMetricFamily(
            "tessera_pipeline_step_seconds",
            "Seconds a pipeline step took: batch (identity and profiles), segments (the "
            "streaming re-evaluation), refresh (computed traits and every segment).",
            labels=["step"],
        )
        failed = CounterMetricFamily(
            "tessera_pipeline_step_failures", "Pipeline steps that failed.", labels=["step"]
        )
        with self._lock:
            for step, histogram in sorted(self._steps.items()):
                steps.add_metric([step], histogram.buckets(), histogram.total)
            for step in ("batch", "segments", "refresh"):
                failed.add_metric([step], float(self._step_failures.get(step, 0)))
        yield steps
        yield failed
        failing = GaugeMetricFamily(
            "tessera_segments_failing", "Segments whose last evaluation failed."
        )
        failing.add_metric([], float(len(failures.failing(runtime.store))))
        yield failing

    def _destination_families(self, runtime: Runtime) -> Iterator[Metric]:
        families = {
            column: CounterMetricFamily(
                f"tessera_destination_{name}", description, labels=["destination"]
            )
            for column, name, description in (
                ("delivered", "deliveries", "Messages a destination accepted."),
                ("retried", "retries", "Deliveries tried again after a failure."),
                ("dead_lettered", "dead_letters", "Messages given up on (dead letters)."),
            )
        }
        for name, delivered, retried, dead in deliveries.totals(runtime.store):
            families["delivered"].add_metric([name], float(delivered))
            families["retried"].add_metric([name], float(retried))
            families["dead_lettered"].add_metric([name], float(dead))
        yield from families.values()

    def _hooks(self) -> Iterator[Metric]:
        decisions = HistogramMetricFamily(
            "tessera_decision_latency_seconds", "Seconds the decision API took to answer."
        )
        with self._lock:
            decisions.add_metric([], self._decisions.buckets(), self._decisions.total)
        yield decisions
        requests = GaugeMetricFamily(
            "tessera_dsr_requests", "Data subject requests by state.", labels=["state"]
        )
        if self.dsr_states is not None:
            for state, value in self.dsr_states():
                requests.add_metric([state], value)
        yield requests
