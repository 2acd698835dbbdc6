"""The pipeline: tails the event log by seq and drives identity, then profiles.

Each batch is one transaction: the derived rows it produces and the new position in
the log commit together. So a crash between batches loses nothing, and a batch is
never applied twice. State after processing the log in any split into batches equals
the state after `rebuild()` (tests/integration/test_pipeline_invariants.py).

A batch that fails is tried again, then taken apart until the event that fails on its own
is found: that event goes to the pipeline's dead letters (`events/failures.py`) with its
error, and the pipeline moves past it. One bad event never stalls identity, profiles and
segments for everyone; the pipeline and a rebuild both skip it until `replay_failed()`.

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
from tessera.events import failures
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
#: the pause before a failed batch is tried again, times the attempt number
_RETRY_PAUSE_SECONDS = 0.5


@dataclass(frozen=True)
class PipelineRun:
    events: int
    batches: int
    seconds: float
    #: events of this run that went to the pipeline's dead letters
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        rate = round(self.events / self.seconds) if self.seconds else 0
        return {
            "events": self.events,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "events_per_second": rate,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class ReplayRun:
    """`replay_failed()`: how many dead letters were let in again, those that failed again
    (their seqs), and the rebuild that processed them (None when there was nothing to do)."""

    replayed: int
    still_failing: list[int]
    rebuild: PipelineRun | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "processed": self.replayed - len(self.still_failing),
            "still_failing": self.still_failing,
            "rebuild": self.rebuild.to_dict() if self.rebuild else None,
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
        #: seqs of the dead-lettered events, stepped over (loaded with the memory)
        self._skipped: set[int] = set()
        #: events dead-lettered by this process, for PipelineRun.failed
        self._held_back = 0

    # -- running ------------------------------------------------------------------

    def process(self, max_events: int | None = None, *, sweep: bool = True) -> PipelineRun:
        """Process everything pending (or at most `max_events`), batch by batch; segments
        follow each batch (streaming). With `sweep`, computed traits are then refreshed
        and every segment re-evaluated over everyone."""
        started = time.perf_counter()
        events = batches = 0
        with self._lock:
            held_back = self._held_back
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
            failed = self._held_back - held_back
        return PipelineRun(events, batches, time.perf_counter() - started, failed)

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

    def replay_failed(self) -> ReplayRun:
        """Let the dead-lettered events in again, after a fix: forget them and rebuild from
        the log, so each is processed in its place among the others. Processing them now,
        after the events that followed, would give a state a rebuild cannot reproduce
        (profile ids, merge order and rule limits depend on order). One that still fails
        is dead-lettered again. With nothing held back it does nothing, so it can be run
        any number of times."""
        with self._lock:
            released = failures.release(self._store)
            if not released:
                return ReplayRun(0, [], None)
            run = self.rebuild()
            still = sorted(set(released) & failures.skipped(self._store))
            return ReplayRun(len(released), still, run)

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
        try:
            with self._lock:
                self._unifier = self._unifier or self._load()  # look-ups from memory now
        except Exception as error:
            # Not fatal: the first batch loads it again (and reports if it still fails).
            failure = failures.describe(error)
            log.error(
                "pipeline could not load its state (%s at %s)", failure.error_type, failure.location
            )
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
            except Exception as error:
                # Type and place only: an exception's message may quote personal data.
                failure = failures.describe(error)
                log.error(
                    "pipeline step failed (%s at %s); it will be retried",
                    failure.error_type,
                    failure.location,
                )
                self._unifier = None  # reload from the store: memory may be ahead of it
                time.sleep(1)

    # -- one batch ----------------------------------------------------------------

    @property
    def unifier(self) -> Unifier:
        if self._unifier is None:
            self._unifier = self._load()
        return self._unifier

    def _process_batch(self, size: int) -> int:
        """One batch, however it goes (`_advance`), then streaming segments when due."""
        done = self._advance(size)
        if done and time.monotonic() >= self._segments_due:
            self.flush_segments()
        return done

    def _advance(self, size: int) -> int:
        """Process the next batch; returns how many events of the log it moved past.

        A batch that raises is tried again (memory reloaded from the store: it may be ahead
        of it) up to pipeline_max_attempts times, in case the cause was passing; then it
        is taken apart (`_isolate`) so that only events that fail on their own are held
        back. Loading memory happens outside the tries: when it fails the store is at fault,
        not the events, and the caller (the loop) retries later. Logs say which batch and
        the exception's type, never its message."""
        position = self.processed_seq()
        attempts = self._settings.pipeline_max_attempts
        for attempt in range(1, attempts + 1):
            self._ready()
            try:
                return self._apply_batch(size)
            except Exception as error:
                self._unifier = None
                log.warning(
                    "pipeline batch after seq %d failed (%s), attempt %d of %d",
                    position,
                    type(error).__name__,
                    attempt,
                    attempts,
                )
                if self._stopping.is_set():
                    raise  # shutting down: set nothing aside on the way out
                if attempt < attempts:
                    self._stopping.wait(_RETRY_PAUSE_SECONDS * attempt)
        return self._isolate(position, size)

    def _isolate(self, position: int, size: int) -> int:
        """Bisect a batch that keeps failing: its first half, then a quarter..., until a
        single event fails; that one is tried alone and then held back (`_hold_back`),
        and the rest of the batch goes on. One bad event in a batch of n costs about
        log2(n) failed tries, each followed by a reload of memory from the store."""
        # The batch's last seq, without reading its rows (that may be what fails).
        last = self._store.fetch_one(
            "SELECT max(seq) FROM events WHERE seq > $after "
            "AND seq < (SELECT min(seq) FROM events WHERE seq > $after) + $size",
            {"after": position, "size": size},
        )
        if last is None or last[0] is None:
            return 0
        end = int(last[0])
        done, chunk = 0, size
        while (after := self.processed_seq()) < end:
            span = max(1, min(chunk, end - after))
            self._ready()
            try:
                moved = self._apply_batch(span)
            except Exception as error:
                self._unifier = None
                if self._stopping.is_set():
                    raise  # shutting down: the next start takes it from here
                if span > 1:
                    chunk = span // 2
                else:
                    done += self._hold_back(after, error)
                    chunk = size
                continue
            if not moved:
                break  # the rest of the range is gone (purged meanwhile)
            done += moved
        return done

    def _hold_back(self, after: int, error: Exception) -> int:
        """The event after seq `after` failed alone: try it again up to pipeline_max_attempts
        in all, then dead-letter it with its error and move the pipeline past it, in one
        transaction (if the store itself is failing, that fails too and nothing is lost)."""
        attempts = self._settings.pipeline_max_attempts
        for _ in range(attempts - 1):
            self._ready()
            try:
                return self._apply_batch(1)
            except Exception as again:
                self._unifier = None
                error = again
        found = self._store.fetch_one("SELECT min(seq) FROM events WHERE seq > ?", [after])
        if found is None or found[0] is None:
            raise error
        seq = int(found[0])
        failure = failures.describe(error)
        with self._store.transaction() as store:
            failures.record(store, seq, failure, attempts, utc_now())
            store.execute(
                "INSERT OR REPLACE INTO pipeline_state VALUES ('processed_seq', ?)", [seq]
            )
        self._skipped.add(seq)
        self._held_back += 1
        log.error(
            "event seq %d failed %d times on its own (%s at %s): set aside in the pipeline's "
            "dead letters (`tessera events failed`); the pipeline goes on",
            seq,
            attempts,
            failure.error_type,
            failure.location,
        )
        return 1

    def _ready(self) -> None:
        """Memory loaded from the store (outside the tries: not the events' fault)."""
        _ = self.unifier

    def _apply_batch(self, size: int) -> int:
        """Read, stitch and persist the next `size` seqs of the log, stepping over the
        dead-lettered ones; returns how many events it moved past."""
        unifier = self.unifier
        read = read_batch(self._store, self.processed_seq(), size)
        if not read:
            return 0
        skipped = self._skipped
        rows = [row for row in read if row[0] not in skipped] if skipped else read
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
            self._persist(read[-1][0], attributed, touched)
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
        return len(read)

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
            "rule FROM identity_ledger WHERE kind IN ('merge', 'conflict', 'breaker', 'dropped') "
            "AND profile_id <> '' "
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
        self._skipped = failures.skipped(self._store)
        return unifier
