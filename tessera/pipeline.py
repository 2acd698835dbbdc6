"""The pipeline: tails the event log by seq and drives identity, then profiles.

Each batch is one transaction: the derived rows it produces and the new position in
the log commit together. So a crash between batches loses nothing, and a batch is
never applied twice. State after processing the log in any split into batches equals
the state after `rebuild()` (tests/integration/test_pipeline_invariants.py).

The identity graph and profile summaries live in memory while the pipeline runs (they
are loaded from the store at start) and every change is written through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from tessera.audiences import lifetime, signals
from tessera.events.timestamps import utc_now
from tessera.identity.graph import LedgerEntry
from tessera.identity.identifiers import Identifier
from tessera.profiles import catalogue
from tessera.profiles.summary import Summary
from tessera.profiles.unifier import (
    _COLUMNS,
    Unifier,
    _identifier,
    merge_rules,
    read_batch,
)
from tessera.profiles.view import profile_from_memory
from tessera.segments import service as segments
from tessera.settings import Settings
from tessera.store import Store

log = logging.getLogger(__name__)

DERIVED_TABLES = ("identities", "profiles", "profile_summaries", "event_profiles",
                  "identity_ledger", "pipeline_state", "computed_traits")  # fmt: skip
_WINDOW_REFRESH_SECONDS = 300
_PURGE_SECONDS = 3600
# positions in a batch row (profiles/unifier.py _COLUMNS)
_TYPE, _TRAITS, _EVENT = _COLUMNS.index("type"), _COLUMNS.index("traits"), _COLUMNS.index("event")
#: while ingest is busy: the batch size, and 1/10 of the time for the pipeline
_BUSY_BATCH = 2_000
#: under continuous ingest, computed traits are refreshed at most this often
_BUSY_REFRESH_SECONDS = 30
# Streaming segments take at most this share of the pipeline's time while it has a backlog:
# after a refresh that took d seconds, the next waits at least d * (1 - share) / share.
_SEGMENT_SHARE = 0.05


@dataclass(frozen=True)
class PipelineRun:
    events: int
    batches: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        rate = round(self.events / self.seconds) if self.seconds else 0
        return {
            "events": self.events,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "events_per_second": rate,
        }


class Pipeline:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unifier: Unifier | None = None
        #: computed traits per profile, replaced whole after each refresh
        self.computed: dict[str, dict[str, Any]] = {}
        self._ledger_id = 0
        self._refreshed_at = 0.0
        self._ingest_commits: Callable[[], int] = lambda: 0
        self._segment_touched: set[str] = set()
        self._segment_changes = segments.Changes()
        self._purged_at = 0.0
        self._segments_due = 0.0  # monotonic time of the next streaming refresh

    # -- running ------------------------------------------------------------------

    def process(self, max_events: int | None = None, *, sweep: bool = True) -> PipelineRun:
        """Process everything pending (or at most `max_events`), batch by batch; segments
        follow each batch (streaming). With `sweep`, computed traits are then refreshed
        and every segment re-evaluated over everyone."""
        started = time.perf_counter()
        events = batches = 0
        with self._lock:
            while max_events is None or events < max_events:
                size = self._settings.pipeline_batch_size
                if max_events is not None:
                    size = min(size, max_events - events)
                done = self._process_batch(size)
                if done == 0:
                    break
                events += done
                batches += 1
            if events and sweep:
                # The sweep re-evaluates every segment over everyone: a streaming refresh
                # of the touched profiles first would only be done twice.
                self._segment_touched = set()
                self._segment_changes = segments.Changes()
                self.refresh_computed_traits()
            else:
                self.flush_segments()
        return PipelineRun(events, batches, time.perf_counter() - started)

    def refresh_computed_traits(self) -> int:
        """Materialise computed traits for every profile (they read the whole history)."""
        with self._lock:
            traits = catalogue.definitions(self._store, self._settings.computed_traits_file)
            # Signal traits live beside computed ones (audiences/signals.py).
            now = utc_now()
            count = catalogue.refresh(self._store, traits, now, signals.evaluate(self._store, now))
            self._refreshed_at = time.monotonic()
            self.computed = catalogue.load(self._store)
            # Segments read traits and computed traits: re-evaluated right after them.
            # The periodic call from the loop is the sweep that lets time windows slide.
            segments.evaluate_all(self._store)
            return count

    def read_profile(self, profile_id: str) -> dict[str, Any] | None:
        """The profile from memory (no SQL), or None when the pipeline has not loaded
        its state in this process yet: callers then read the store."""
        unifier = self._unifier
        if unifier is None:
            return None
        return profile_from_memory(unifier, self.computed, profile_id)

    def find_in_memory(self, identifier: Identifier) -> str | None:
        unifier = self._unifier
        return None if unifier is None else unifier.graph.profile(identifier)

    def rebuild(self) -> PipelineRun:
        """Forget every derived row and process the whole log again."""
        with self._lock:
            with self._store.transaction() as store:
                for table in DERIVED_TABLES:
                    store.execute(f"DELETE FROM {table}")
            self._unifier = None
            return self.process()

    def purge_expired(
        self, now: datetime | None = None, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Purge anonymous profiles past their lifetime (audiences/lifetime.py), holding
        the pipeline still, then reload its memory from the store."""
        moment = now or utc_now()
        with self._lock:
            settings = self._settings
            result = lifetime.purge(
                self._store,
                moment,
                settings.lifetime_days,
                settings.shortest_lifetime_days,
                dry_run=dry_run,
            )
            if result["profiles"] and not dry_run:
                self._unifier = None
            self._purged_at = time.monotonic()
            return result

    def lag(self) -> dict[str, Any]:
        processed = self.processed_seq()
        row = self._store.fetch_one(
            "SELECT (SELECT coalesce(max(seq), 0) FROM events), "
            "(SELECT epoch(now()::TIMESTAMP - received_at) FROM events WHERE seq = ?)",
            [processed + 1],
        )
        assert row is not None
        return {
            "processed_seq": processed,
            "lag_events": max(int(row[0]) - processed, 0),
            "lag_seconds": round(float(row[1] or 0.0), 3),
        }

    def processed_seq(self) -> int:
        row = self._store.fetch_one("SELECT value FROM pipeline_state WHERE key = 'processed_seq'")
        return int(row[0]) if row else 0

    def notify(self, _last_seq: int = 0) -> None:
        """Called after the writer commits: wake the background loop."""
        self._wake.set()

    def start(self) -> None:
        """Run in the background: load state, catch up, then follow the log."""
        self.computed = catalogue.load(self._store)
        # The first purge comes an hour after start, not while a demo or a backfill loads.
        self._purged_at = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="tessera-pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def watch_ingest(self, commits: Callable[[], int]) -> None:
        """Give the background loop a way to see ingest activity (the writer's commits)."""
        self._ingest_commits = commits

    def _loop(self) -> None:
        """Follow the log. Acknowledging events comes first: while the writer is
        committing, the pipeline works a tenth of the time (it sleeps nine times as
        long as each batch took) and lets its lag grow; when ingest pauses it catches up
        flat out. Measured: without this, ingest fell from ~55k to ~17k events/s. Under
        load the batches are small too: a batch holds the GIL for its whole Python part,
        and a 20,000-event one stalled request handling for ~0.4 s."""
        with self._lock:
            self._unifier = self._unifier or self._load()  # look-ups served from memory now
        stale = busy = False
        while not self._stopping.is_set():
            self._wake.wait(self._settings.pipeline_interval_seconds)
            self._wake.clear()
            try:
                while not self._stopping.is_set():
                    commits, started = self._ingest_commits(), time.monotonic()
                    size = self._settings.pipeline_batch_size
                    with self._lock:
                        done = self._process_batch(min(size, _BUSY_BATCH) if busy else size)
                    if not done:
                        break
                    stale = True
                    busy = self._ingest_commits() != commits
                    if busy:
                        self._stopping.wait(9 * (time.monotonic() - started))
                    if time.monotonic() - self._refreshed_at > _BUSY_REFRESH_SECONDS:
                        self.refresh_computed_traits()
                        stale = False
                if time.monotonic() - self._purged_at > _PURGE_SECONDS:
                    self.purge_expired()  # anonymous data past its lifetime
                if stale or time.monotonic() - self._refreshed_at > _WINDOW_REFRESH_SECONDS:
                    # Caught up: computed traits read the whole history, so they are
                    # refreshed once here rather than after every batch. Windowed ones
                    # (last 30 days...) also change as time passes.
                    self.refresh_computed_traits()
                    stale = False
            except Exception:
                log.exception("pipeline batch failed; it will be retried")
                self._unifier = None  # reload from the store: memory may be ahead of it
                time.sleep(1)

    # -- one batch ----------------------------------------------------------------

    @property
    def unifier(self) -> Unifier:
        if self._unifier is None:
            self._unifier = self._load()
        return self._unifier

    def _process_batch(self, size: int) -> int:
        unifier = self.unifier
        rows = read_batch(self._store, self.processed_seq(), size)
        if not rows:
            return 0
        attributed, touched = unifier.apply(rows)
        changed = set(unifier.graph.changed_profiles)
        self._segment_changes.add(
            segments.Changes(
                events={row[_EVENT] for row in rows if row[_TYPE] == "track" and row[_EVENT]},
                traits=any(row[_TRAITS] for row in rows),
                any_event=True,
                identity=bool(unifier.graph.new_links)
                or bool(changed - touched)
                or any(e.kind in ("new", "merge") for e in unifier.graph.ledger),
            )
        )
        try:
            self._persist(rows[-1][0], attributed, touched)
        except Exception:
            self._unifier = None  # memory is ahead of the store: reload before going on
            raise
        # Streaming: segments are re-evaluated for just the profiles batches touched (and
        # those merged away, which leave), gathered for up to segment_interval_seconds.
        # One evaluation reads the events once whatever it covers, so evaluating after
        # every batch cost most of the pipeline's time with 50 segments (3k events/s).
        if not self._segment_touched:
            # The first touched batch since the last refresh starts the wait: a refresh
            # comes at most every interval after changes begin, never right after a batch.
            self._segments_due = max(
                self._segments_due, time.monotonic() + self._settings.segment_interval_seconds
            )
        self._segment_touched |= touched | changed
        if time.monotonic() >= self._segments_due:
            self.flush_segments()
        return len(rows)

    def flush_segments(self) -> None:
        """Re-evaluate segments for the profiles touched since the last flush. The next one
        is due after segment_interval_seconds, or later if this one was slow: one
        evaluation reads the event log once, so under a backlog it is spaced out to keep
        its share of the pipeline's time to _SEGMENT_SHARE (membership then lags by about
        twenty evaluations' time, while the pipeline itself is behind)."""
        started = time.monotonic()
        if self._segment_touched:
            segments.evaluate_touched(
                self._store, sorted(self._segment_touched), changes=self._segment_changes
            )
            self._segment_touched = set()
            self._segment_changes = segments.Changes()
        finished = time.monotonic()
        spacing = (finished - started) * (1 - _SEGMENT_SHARE) / _SEGMENT_SHARE
        self._segments_due = finished + max(self._settings.segment_interval_seconds, spacing)

    def _persist(self, last_seq: int, attributed: list[tuple[int, str]], touched: set[str]) -> None:
        unifier = self.unifier
        graph = unifier.graph
        ledger, links, changed = graph.drain()
        changed_list = sorted(changed)
        summaries = sorted((touched | changed) - graph.redirect.keys())
        with self._store.transaction() as store:
            if attributed:
                store.insert_arrow(
                    "event_profiles",
                    pa.table(
                        {
                            "seq": pa.array([a[0] for a in attributed], pa.int64()),
                            "profile_id": [a[1] for a in attributed],
                        }
                    ),
                )
            if links:
                store.insert_arrow(
                    "identities",
                    pa.table(
                        {
                            "type": [i.type for i, _, _ in links],
                            "value": [i.value for i, _, _ in links],
                            "profile_id": [p for _, p, _ in links],
                            "first_seq": pa.array([s for _, _, s in links], pa.int64()),
                        }
                    ),
                )
            if ledger:
                store.insert_arrow("identity_ledger", self._ledger_table(ledger))
            if changed_list:
                store.execute(
                    "DELETE FROM profiles WHERE profile_id IN (SELECT unnest(?))", [changed_list]
                )
                store.insert_arrow(
                    "profiles",
                    pa.table(
                        {
                            "profile_id": changed_list,
                            "created_seq": pa.array(
                                [graph.created[p] for p in changed_list], pa.int64()
                            ),
                            "merged_into": [graph.redirect.get(p) for p in changed_list],
                            "flagged": [graph.flagged.get(p) for p in changed_list],
                        }
                    ),
                )
            store.execute(
                "DELETE FROM profile_summaries WHERE profile_id IN (SELECT unnest(?))",
                [sorted(touched | changed)],
            )
            if summaries:
                store.insert_arrow("profile_summaries", self._summary_table(summaries))
            store.execute(
                "INSERT OR REPLACE INTO pipeline_state VALUES ('processed_seq', ?)", [last_seq]
            )

    def _ledger_table(self, entries: list[LedgerEntry]) -> pa.Table:
        first = self._ledger_id + 1
        self._ledger_id += len(entries)
        return pa.table(
            {
                "id": pa.array(range(first, first + len(entries)), pa.int64()),
                "seq": pa.array([e.seq for e in entries], pa.int64()),
                "kind": [e.kind for e in entries],
                "profile_id": [e.profile for e in entries],
                "identifier": [str(e.identifier) if e.identifier else None for e in entries],
                "other_identifier": [str(e.other) if e.other else None for e in entries],
                "other_profile_id": [e.other_profile for e in entries],
                "rule": [e.rule for e in entries],
            }
        )

    def _summary_table(self, profiles: list[str]) -> pa.Table:
        # A profile started by an identifier a rule kept apart has no events: an empty
        # summary, so it can still be looked up.
        rows = [self.unifier.summary(p) for p in profiles]
        micros = pa.timestamp("us")
        return pa.table(
            {
                "profile_id": profiles,
                "first_seen": pa.array([s.first_seen for s in rows], micros),
                "last_seen": pa.array([s.last_seen for s in rows], micros),
                "event_count": pa.array([s.event_count for s in rows], pa.int64()),
                "channels": [orjson.dumps(sorted(s.channels)).decode() for s in rows],
                "traits": [orjson.dumps(s.trait_values()).decode() for s in rows],
                "trait_state": [s.state_json() for s in rows],
                "consent": [orjson.dumps(s.consent_values()).decode() for s in rows],
            }
        )

    # -- loading ------------------------------------------------------------------

    def _load(self) -> Unifier:
        """Rebuild the in-memory graph and summaries from the derived tables."""
        unifier = Unifier(self._store, self._settings, merge_rules(self._store, self._settings))
        graph = unifier.graph
        for profile, created, merged_into, flagged in self._store.fetch_all(
            "SELECT profile_id, created_seq, merged_into, flagged FROM profiles"
        ):
            graph.created[profile] = created
            if merged_into is not None:
                graph.redirect[profile] = merged_into
                graph.absorbed.setdefault(merged_into, []).append(profile)
            else:
                graph.members[profile] = []
                graph.counts[profile] = Counter()
            if flagged:
                graph.flagged[profile] = flagged
        for kind, value, profile in self._store.fetch_all(
            "SELECT type, value, profile_id FROM identities ORDER BY first_seq"
        ):
            identifier = Identifier(kind, value)
            graph.profile_of[identifier] = profile
            live = graph.resolve(profile)
            graph.members[live].append(identifier)
            graph.counts[live][kind] += 1
        unifier.summaries = {
            profile: Summary.from_row(first, last, count, channels, state)
            for profile, first, last, count, channels, state in self._store.fetch_all(
                "SELECT profile_id, epoch_us(first_seen), epoch_us(last_seen), event_count, "
                "channels, trait_state FROM profile_summaries"
            )
        }
        for seq, kind, profile, identifier, other, other_profile, rule in self._store.fetch_all(
            "SELECT seq, kind, profile_id, identifier, other_identifier, other_profile_id, "
            "rule FROM identity_ledger WHERE kind IN ('merge', 'conflict', 'breaker') "
            "ORDER BY id"
        ):
            entry = LedgerEntry(
                seq,
                kind,
                profile,
                _identifier(identifier) if identifier else None,
                _identifier(other) if other else None,
                other_profile,
                rule,
            )
            unifier.notable.setdefault(graph.resolve(profile), []).append(entry)
        row = self._store.fetch_one("SELECT coalesce(max(id), 0) FROM identity_ledger")
        self._ledger_id = int(row[0]) if row else 0
        return unifier
