"""The tracking plans at the door: the EventWriter's screen (events/writer.py), run on
every load of the log and every import before the events are stored.

Only events of a source with a plan are parsed and validated; a load without any is a
set look-up per distinct source (docs/ingest.md: the load path stays fast). Plans are
compiled once and re-read only when the table changes (looked at most every
`check_every_s`). Per mode: `allow` counts violations (in memory, `allowed`), `flag`
records them per event and keeps the event, `block` records them and sends the event to
the dead letters (`rejected`, code `plan_violation`) instead of the log.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tessera.eventlog import LOG_REJECTED_SCHEMA
from tessera.eventlog.records import batch_of
from tessera.events.screens import Screened
from tessera.plans.document import CompiledPlan, compile_plan
from tessera.store import Store

log = logging.getLogger(__name__)
BLOCKED = "plan_violation"


class PlanScreen:
    def __init__(self, store: Store, *, check_every_s: float = 0.5) -> None:
        self._store = store
        self._check_every = check_every_s
        self._lock = threading.Lock()
        self._plans: dict[str, CompiledPlan] = {}
        self._stamp: tuple[Any, ...] | None = None
        self._checked_at = float("-inf")
        #: violations of `allow` plans since start (counted, not recorded)
        self.allowed = 0

    def invalidate(self) -> None:
        """Read the plans again at the next load (after one changed in this process)."""
        self._checked_at = float("-inf")

    def screen(self, events: pa.Table) -> Screened | None:
        plans = self._current()
        if not plans:
            return None
        sources = events.column("source_id")
        planned = pc.is_in(sources, value_set=pa.array(list(plans), type=pa.string()))
        if not pc.any(planned).as_py():
            return None
        columns = {
            name: events.column(name).to_pylist()
            for name in (
                "source_id",
                "type",
                "event",
                "message_id",
                "received_at",
                "properties",
                "traits",
            )
        }
        planned_rows = [i for i, hit in enumerate(planned.to_pylist()) if hit]
        payloads = events.column("payload")
        blocked = [False] * events.num_rows
        violations: list[tuple[object, ...]] = []
        refused: list[tuple[object, ...]] = []
        for row in planned_rows:
            plan = plans[columns["source_id"][row]]
            # The log's properties and traits columns (as the contract flattened them), not
            # the whole payload: a smaller parse.
            kind = columns["type"][row]
            text = columns["traits" if kind == "identify" else "properties"][row]
            value = orjson.loads(text) if text else None
            found = plan.check(kind, columns["event"][row], value, value)
            if not found:
                continue
            if plan.mode == "allow":
                self.allowed += len(found)
                continue
            block = plan.mode == "block"
            name = columns["event"][row] or columns["type"][row]
            for violation in found:
                violations.append(
                    (
                        columns["source_id"][row],
                        columns["received_at"][row],
                        columns["message_id"][row],
                        name,
                        violation.path,
                        violation.reason,
                        block,
                    )
                )
            if block:
                blocked[row] = True
                first = found[0]
                refused.append(
                    (
                        columns["source_id"][row],
                        columns["received_at"][row],
                        BLOCKED,
                        first.path,
                        f"tracking plan: {first.reason}",
                        columns["message_id"][row],
                        payloads[row].as_py(),
                    )
                )
        kept = events.filter(pa.array([not b for b in blocked])) if any(blocked) else events
        rejected = None
        if refused:
            rejected = pa.Table.from_batches([batch_of(refused, LOG_REJECTED_SCHEMA)])
        return Screened(kept, rejected, violations)

    def _current(self) -> dict[str, CompiledPlan]:
        now = time.monotonic()
        if now - self._checked_at < self._check_every:
            return self._plans
        with self._lock:
            if now - self._checked_at >= self._check_every:
                self._refresh()
                self._checked_at = now
        return self._plans

    def _refresh(self) -> None:
        stamp = self._store.fetch_one("SELECT count(*), max(updated_at) FROM tracking_plans")
        if stamp == self._stamp:
            return
        plans = {}
        for source_id, mode, text in self._store.fetch_all(
            "SELECT source_id, mode, plan FROM tracking_plans"
        ):
            try:
                plans[source_id] = compile_plan(mode, orjson.loads(text))
            except Exception as e:  # checked when saved: a plan that fails now is skipped
                log.error(
                    "the tracking plan of source %s cannot be compiled (%s)",
                    source_id,
                    type(e).__name__,
                )
        self._plans, self._stamp = plans, stamp
