"""The delivery engine: one worker per enabled destination, kept in step with the table.

`Activation.start()` runs a small supervisor thread that, every second, starts a worker
for each enabled destination, stops the workers of destinations disabled or deleted, and
restarts a worker whose destination changed (options, enabled, rotated secret). The
runtime of `tessera serve` owns one (`Runtime.activation`); the CLI without a server never
starts it. `connector_for` is the registry of kinds: the one door built-in kinds use and a
new connector joins (docs/activation.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import httpx

from tessera.activation import deliveries, destinations
from tessera.activation.connectors import Connector, HttpConnector
from tessera.activation.destinations import Configured
from tessera.activation.files import FilesConnector
from tessera.activation.platforms import GoogleCustomerMatch, MetaCustomAudiences
from tessera.activation.worker import Worker
from tessera.store import Store

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 1.0
TransportFor = Callable[[Configured], httpx.BaseTransport | None]


def connector_for(
    destination: Configured,
    secret: str | None,
    spool_dir: Path,
    transport: httpx.BaseTransport | None = None,
) -> Connector:
    """The transport of one destination, by its kind."""
    options = destination.options
    if destination.kind == "webhook":
        return HttpConnector(options.url or "", options, secret=secret, transport=transport)
    if destination.kind == "segment":
        url = (options.url or "").rstrip("/")
        url = url if url.endswith("/v1/batch") else url + "/v1/batch"
        return HttpConnector(url, options, auth_key=options.write_key, transport=transport)
    if destination.kind == "files":
        return FilesConnector(options, spool_dir / destination.id)
    if destination.kind == "google_customer_match":
        return GoogleCustomerMatch(options, transport)
    return MetaCustomAudiences(options, transport)


class Activation:
    """Runs the workers of one store's destinations (see the module)."""

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        advertising_policy: str | Mapping[str, str],
        transport_for: TransportFor | None = None,
    ) -> None:
        self.store = store
        self.spool_dir = data_dir / "destinations"
        self.advertising_policy = advertising_policy
        self.transport_for = transport_for
        self.workers: dict[str, tuple[datetime, Worker]] = {}
        #: destinations whose worker could not start, and the version that failed
        self.broken: dict[str, datetime] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name="activation", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        for _, worker in self.workers.values():
            worker.stop(timeout=2)
        self.workers.clear()

    def reconcile(self) -> None:
        """Start, stop and restart workers to match the destinations table."""
        wanted = {d.id: d for d in destinations.configurations(self.store) if d.enabled}
        for destination_id in list(self.workers):
            changed_at, worker = self.workers[destination_id]
            current = wanted.get(destination_id)
            if current is None or current.updated_at != changed_at:
                worker.stop(timeout=2)
                del self.workers[destination_id]
        for destination_id, destination in wanted.items():
            if destination_id in self.workers:
                continue
            if self.broken.get(destination_id) == destination.updated_at:
                continue  # it could not start as it is: wait until it changes
            try:
                worker = self._worker(destination)
            except Exception as e:  # e.g. a folder that cannot be created
                self._cannot_start(destination, e)
                continue
            worker.start()
            self.workers[destination_id] = (destination.updated_at, worker)

    def _worker(self, destination: Configured) -> Worker:
        transport = self.transport_for(destination) if self.transport_for else None
        secret = destinations.secret_of(self.store, destination.id)
        connector = connector_for(destination, secret, self.spool_dir, transport)
        source_ids = [
            row[0] for row in self.store.fetch_all(
                "SELECT id FROM sources WHERE list_contains(?, name)",
                [list(destination.options.sources)],
            )
        ]  # fmt: skip
        return Worker(self.store, destination, connector, source_ids, self.advertising_policy)

    def _cannot_start(self, destination: Configured, error: Exception) -> None:
        """Say why in the destination's delivery log (and the server's log)."""
        what = f"cannot start: {type(error).__name__}: {error}"[:500]
        log.error("destination %s: %s", destination.name, what)
        self.broken[destination.id] = destination.updated_at
        tally = deliveries.Tally()
        tally.failed(None, what)
        with self.store.transaction():
            deliveries.record(self.store, destination.id, tally)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                self.reconcile()
            except Exception as e:  # the store's trouble: try again next second
                log.error("activation: could not reconcile the destinations: %s", e)
            self._stopping.wait(RECONCILE_SECONDS)
