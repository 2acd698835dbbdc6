"""The Pipeline: what the rest of Tessera calls to process, rebuild, replay and read.

Each batch is read from the log, stitched and summarised in memory (`profiles/unifier.py`),
then written in one transaction with the new position (`persist.py`). A batch that fails is
tried again and taken apart (`isolation.py`); the background loop (`loop.py`) decides when
batches, refreshes, sweeps and purges run. The graph and summaries live in memory while the
pipeline runs, restored from the store by their owners (`Unifier.restore`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tessera.audiences import lifetime
from tessera.catalog.keys import ProductKeys
from tessera.errors import TesseraError
from tessera.events import failures
from tessera.events.timestamps import utc_now
from tessera.identity import lookup, stored
from tessera.identity.identifiers import Identifier
from tessera.pipeline import persist, refresh
from tessera.pipeline.changes import ChangeFeed
from tessera.pipeline.isolation import Isolation, processed_seq
from tessera.pipeline.loop import Loop
from tessera.pipeline.runs import Lag, PipelineRun, RefreshFailure, ReplayRun
from tessera.predict import service as predictions
from tessera.profiles import aggregate_store, catalogue, engagement_refresh
from tessera.profiles.aggregates import Aggregates, day_number
from tessera.profiles.computed import ComputedTrait
from tessera.profiles.consent import ENRICHMENT_PURPOSE
from tessera.profiles.unifier import COLUMNS, Unifier, read_batch
from tessera.profiles.view import facts_from_memory, profile_from_memory
from tessera.segments import service as segments
from tessera.settings import Settings
from tessera.store import Store

log = logging.getLogger(__name__)

#: the tables a rebuild empties and fills again from the log. Segment membership is not
#: among them: it is history (who was in a segment when); a rebuild re-evaluates every
#: segment once at its end, so current members follow the rebuilt profiles (see rebuild).
DERIVED_TABLES = ("identities", "profiles", "profile_summaries", "event_profiles",
                  "identity_ledger", "pipeline_state", "computed_traits",
                  "trait_aggregates", "trait_aggregate_keys")  # fmt: skip
#: how often the pipeline persists the computed-trait aggregates changed since the last
#: time (with that batch's transaction)
AGGREGATES_SAVE_SECONDS = 5.0
# positions in a batch row (profiles/unifier.py COLUMNS)
_TYPE, _TRAITS, _EVENT = COLUMNS.index("type"), COLUMNS.index("traits"), COLUMNS.index("event")
_CONSENT, _TCF = COLUMNS.index("consent"), COLUMNS.index("tcf")
# Streaming segments take at most this share of the pipeline's time while it has a backlog:
# after a refresh that took d seconds, the next waits at least d * (1 - share) / share.
_SEGMENT_SHARE = 0.05


class Pipeline:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self.settings = settings
        #: `has third_party` counts only people whose consent allows enrichment's purpose
        self._enrichment_policy = settings.consent_policy(ENRICHMENT_PURPOSE)
        #: where events name products (segments' and traits' product conditions)
        self.products = ProductKeys.of_settings(settings)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: Loop | None = None
        self._unifier: Unifier | None = None
        #: computed-trait aggregates, loaded and dropped with the unifier (`_load`)
        self._aggregates: Aggregates | None = None
        #: profiles whose aggregates changed since they were last persisted, and the
        #: monotonic time they were (0: with the next batch)
        self._unsaved: set[str] = set()
        self._saved_at = 0.0
        #: computed traits per profile, as the store holds them: the touched profiles'
        #: after each batch, the changed ones after each refresh (`refresh.py`)
        self.computed: dict[str, dict[str, Any]] = {}
        #: the key (day, definitions) of the last refresh that valued everyone's
        #: aggregates: until it changes, a refresh starts from memory (`refresh.py`)
        self._swept: tuple[int, bytes] | None = None
        #: what the last refresh valued of best channel and time, and the memory it was
        #: applied to (a reload starts over: `engagement_refresh.py`)
        self._tracked: tuple[object, engagement_refresh.Tracked | None] = (None, None)
        #: what the last refresh left in memory (`refresh.Prior`), and the memory's origin
        self._prior: tuple[object, refresh.Prior | None] = (None, None)
        #: refreshes begun, and the one computing off the lock (batches note what they
        #: touch in its snapshot)
        self._refresh_epoch = 0
        self._watching: refresh.Snapshot | None = None
        self._ledger_id = 0
        #: monotonic times of the last refresh of computed traits and the last purge
        self.refreshed_at = 0.0
        self.purged_at = 0.0
        #: monotonic time of the last scheduled refit of the predictive models: the first
        #: one comes a full interval after the start (a restart does not refit at once)
        self.predicted_at = time.monotonic()
        #: called with (step, seconds, succeeded) after each batch ("batch"), streaming
        #: segment flush ("segments") and whole-population refresh ("refresh"): metrics
        self.timing_observers: list[Callable[[str, float, bool], None]] = []
        self._ingest_commits: Callable[[], int] = lambda: 0
        #: the clock computed traits are valued at (windows, recency); tests move it
        self.clock: Callable[[], datetime] = utc_now
        self._log_backlog: Callable[[], int] = lambda: 0
        self._segment_touched: set[str] = set()
        #: the profiles changed, for the parts that serve from memory (`changes.py`)
        self.changes = ChangeFeed()
        self._segment_changes = segments.Changes()
        self._segments_due = 0.0  # monotonic time of the next streaming refresh
        #: during a rebuild, streaming segments wait for its end (see rebuild)
        self._rebuilding = False
        #: seqs of the dead-lettered events, stepped over (loaded with the memory)
        self._skipped: set[int] = set()
        #: events dead-lettered by this process, for PipelineRun.failed
        self._held_back = 0
        self._isolation = Isolation(
            store,
            settings.pipeline_max_attempts,
            self._stopping,
            ready=self._ready,
            apply=self._apply_batch,
            forget=self.forget_memory,
            set_aside=self._set_aside,
        )

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
                size = self.settings.pipeline_batch_size
                if max_events is not None:
                    size = min(size, max_events - events)
                done = self.run_batch(size)
                if done == 0:
                    break
                if self.segments_due():
                    self.flush_segments()
                events += done
                batches += 1
            if events and sweep:
                # The sweep re-evaluates every segment over everyone: a streaming refresh
                # of the touched profiles first would only be done twice.
                self._segment_touched = set()
                self._segment_changes = segments.Changes()
                self.refresh_computed_traits()
            elif not self._rebuilding:
                self.flush_segments()
            failed = self._held_back - held_back
        return PipelineRun(events, batches, time.perf_counter() - started, failed)

    def run_batch(self, size: int) -> int:
        """One batch of at most `size` seqs, however it goes (`isolation.py`); returns how
        many events of the log it moved past. Streaming segments are the caller's."""
        with self._lock:
            return self._isolation.advance(size)

    def segments_due(self) -> bool:
        """Whether profiles were touched and their streaming refresh is due."""
        return (
            bool(self._segment_touched)
            and not self._rebuilding
            and time.monotonic() >= self._segments_due
        )

    def refresh_computed_traits(self, *, full: bool = False) -> int:
        """Materialise computed traits for every profile (`refresh.py`), holding batches
        still: from the values the batches keep (no log read: windows and recency follow
        the day, RFM scores the population), or with `full` by the full recompute over the
        whole history (the rebuild's). Then every segment is re-evaluated. Returns how
        many profiles' computed traits changed. The background loop uses `begin_refresh`
        and `finish_refresh` instead, so that batches go on while it computes."""
        with self._lock:
            snapshot = self._snapshot(full)
            return self._apply_refresh(refresh.compute(self._store, snapshot, self.products))

    def begin_refresh(self) -> Callable[[], refresh.Refreshed]:
        """A refresh's snapshot, and the work to run off the lock (on another thread);
        batches that run meanwhile are recorded in the snapshot for `finish_refresh`."""
        with self._lock:
            snapshot = self._watching = self._snapshot(False)
        return lambda: refresh.compute(self._store, snapshot, self.products)

    def finish_refresh(self, outcome: Callable[[], refresh.Refreshed]) -> int:
        """Apply what the work of `begin_refresh` gave (`outcome` returns it, or raises its
        failure): unless memory was reloaded or another refresh began since."""
        with self._lock:
            self._watching = None
            refreshed = outcome()
            snapshot = refreshed.snapshot
            if snapshot.origin is not self._unifier or snapshot.epoch != self._refresh_epoch:
                return 0
            return self._apply_refresh(refreshed)

    def _snapshot(self, full: bool) -> refresh.Snapshot:
        """What a refresh starts from (`refresh.Snapshot`); the lock is held."""
        self._ready()
        self._refresh_epoch += 1
        traits = catalogue.definitions(self._store, self.settings.computed_traits_file)
        kept = catalogue.batch_traits(traits)
        now = self.clock()
        key = refresh.key_of(day_number(now), kept)
        base: dict[str, dict[str, Any]] | None = None
        light = not full and key == self._swept
        if light:
            base = dict(self.computed)  # a copy of the references: batches replace, not edit
        elif not full:
            aggregates = self._current_aggregates(kept)
            aggregates.prune(key[0])
            base = {p: aggregates.values(p, key[0]) for p in aggregates.profiles}
        return refresh.Snapshot(
            now=now,
            traits=traits,
            kept=frozenset(t.name for t in kept),
            key=key,
            base=base,
            light=light,
            origin=self._unifier,
            epoch=self._refresh_epoch,
            tracked=self._tracked[1] if self._tracked[0] is self._unifier else None,
            prior=self._prior[1] if self._prior[0] is self._unifier else None,
        )

    def _apply_refresh(self, refreshed: refresh.Refreshed) -> int:
        """Write what changed, in the store and in memory; re-evaluate every segment."""
        snapshot = refreshed.snapshot
        changed, gone = refresh.changes(self.computed, refreshed)
        if snapshot.light:
            refresh.write(self._store, changed, gone, snapshot.now)
            computed = self.computed
            for profile in gone:
                computed.pop(profile, None)
            computed.update(changed)
        else:
            refresh.replace(self._store, refreshed.values, snapshot.now)
            self.computed = refreshed.values
        self._swept = snapshot.key
        self._tracked = (snapshot.origin, refreshed.tracked)
        self._prior = (
            snapshot.origin,
            refresh.Prior(
                values=dict(self.computed),  # references: the batches replace, not edit
                due=frozenset(snapshot.touched),
                rules=refreshed.rules,
                extra=refreshed.extra,
                tiles=refreshed.tiles,
                spent=refreshed.spent,
            ),
        )
        self.refreshed_at = time.monotonic()
        # Segments read traits and computed traits: re-evaluated right after them.
        # The periodic call from the loop is the sweep that lets time windows slide.
        # One moment for the whole sweep, so who it moved can be read back.
        moment = utc_now()
        segments.evaluate_all(
            self._store, moment, products=self.products, enrichment_policy=self._enrichment_policy
        )
        if snapshot.light:
            # Only these can answer differently now: the readers of the feed (the decision
            # memory) re-read them instead of everyone. The day's sweep and the full
            # recompute replaced every row: everyone.
            self.changes.post(changed.keys() | gone | segments.moved_at(self._store, moment))
        else:
            self.changes.post_everyone()
        return len(changed) + len(gone)

    def refresh_predictions(self) -> None:
        """Refit the predictive models and rescore everyone (the schedule's step), then
        refresh the computed traits, which carry the scores to segments."""
        with self._lock:
            self.predicted_at = time.monotonic()
            predictions.refit(self._store, self.settings, utc_now())
            self.refresh_computed_traits()

    def _current_aggregates(self, traits: list[ComputedTrait]) -> Aggregates:
        """The aggregates for these definitions: when a trait was added, changed or
        removed since they were loaded, the new ones are filled from the log."""
        self._ready()
        aggregates = self._aggregates
        if aggregates is None or not aggregate_store.covers(aggregates, traits):
            aggregates = self._aggregates = aggregate_store.restore(
                self._store, traits, day_number(self.clock()), self.products
            )
            # Restored from the store and caught up with the log; what memory had not
            # saved was dropped with the old aggregates and rebuilt by that catch-up.
            self._unsaved, self._saved_at = set(), time.monotonic()
        return aggregates

    def flush_segments(self) -> None:
        """Re-evaluate segments for the profiles touched since the last flush. The next one
        is due after segment_interval_seconds, or later if this one was slow: one
        evaluation reads the event log once, so under a backlog it is spaced out to keep
        its share of the pipeline's time to _SEGMENT_SHARE (membership then lags by about
        twenty evaluations' time, while the pipeline itself is behind)."""
        with self._lock:
            started = time.monotonic()
            if self._segment_touched:
                segments.evaluate_touched(
                    self._store,
                    sorted(self._segment_touched),
                    changes=self._segment_changes,
                    products=self.products,
                    enrichment_policy=self._enrichment_policy,
                )
                self.changes.post(self._segment_touched)  # their memberships now
                self._segment_touched = set()
                self._segment_changes = segments.Changes()
            finished = time.monotonic()
            spacing = (finished - started) * (1 - _SEGMENT_SHARE) / _SEGMENT_SHARE
            self._segments_due = finished + max(self.settings.segment_interval_seconds, spacing)

    def rebuild(self) -> PipelineRun:
        """Forget every derived row and process the whole log again.

        Segment membership is history, not derived state: it is kept. Streaming segment
        refreshes wait until the end (halfway, most profiles are not rebuilt yet and
        would be recorded as leaving; computed traits are empty until the end), then
        computed traits are refreshed and one sweep re-evaluates every segment over the
        rebuilt profiles, even when the log is empty. Profile ids are derived from the
        log, so whoever still matches keeps their stay and its entry time; only real
        differences are recorded, entering or leaving at the time of the rebuild."""
        started = time.perf_counter()
        with self._lock:
            with self._store.transaction() as store:
                for table in DERIVED_TABLES:
                    store.execute(f"DELETE FROM {table}")
            self._unifier = None
            self._rebuilding = True
            try:
                run = self.process(sweep=False)
            finally:
                self._rebuilding = False
            self._segment_touched = set()
            self._segment_changes = segments.Changes()
            # The rebuild is the full recompute; the aggregates were rebuilt batch by
            # batch from empty (tests hold both equal).
            self.refresh_computed_traits(full=True)
            # The run's time includes the final refresh, as a run with a sweep does.
            return PipelineRun(run.events, run.batches, time.perf_counter() - started, run.failed)

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
    ) -> lifetime.Purged:
        """Purge anonymous profiles past their lifetime (audiences/lifetime.py), holding
        the pipeline still, then reload its memory from the store."""
        moment = now or utc_now()
        with self._lock:
            settings = self.settings
            result = lifetime.purge(
                self._store,
                moment,
                settings.lifetime_days,
                settings.shortest_lifetime_days,
                dry_run=dry_run,
            )
            if result.profiles and not dry_run:
                self._unifier = None
                self.changes.post_everyone()
            self.purged_at = time.monotonic()
            return result

    # -- reading ------------------------------------------------------------------

    def read_profile(self, profile_id: str) -> dict[str, Any] | None:
        """The profile from memory (no SQL), or None when the pipeline has not loaded
        its state in this process yet: callers then read the store."""
        unifier = self._unifier
        if unifier is None:
            return None
        return profile_from_memory(unifier, self.computed, profile_id)

    def read_facts(self, profile_id: str) -> dict[str, Any] | None:
        """Traits, consent, computed traits and merged ids from memory (no SQL, a few
        microseconds: the decision API's read), or None when memory is not loaded."""
        unifier = self._unifier
        if unifier is None:
            return None
        return facts_from_memory(unifier, self.computed, profile_id)

    @property
    def aggregates(self) -> Aggregates:
        """The computed-trait aggregates the batches keep (loaded with the graph)."""
        with self._lock:
            self._ready()
            assert self._aggregates is not None
            return self._aggregates

    @property
    def memory(self) -> Unifier | None:
        """The graph and summaries in memory, or None while they are not loaded (a new
        object after each reload)."""
        return self._unifier

    @property
    def memory_loaded(self) -> bool:
        """Whether the graph and summaries are in memory (`read_facts` and
        `find_in_memory` answer without SQL)."""
        return self._unifier is not None

    def find_in_memory(self, identifier: Identifier) -> str | None:
        """The live profile holding `identifier` from the loaded graph; None when the graph
        is not loaded. The loaded graph holds every identity the store holds (a batch
        changes memory first, and a failed write drops memory), so a miss is final:
        NotFound, without asking the store. Under load a look-up that polls for a person
        not processed yet used to cost a query over `identities` each time."""
        unifier = self._unifier
        if unifier is None:
            return None
        found = unifier.graph.profile(identifier)
        if found is None:
            raise lookup.not_found(identifier)
        return found

    def lag(self) -> Lag:
        """How far behind the log the pipeline is, and the background refresh's failure
        when it keeps failing (`refresh_failure`, else None)."""
        # The log's files first: an event counted there at this moment is in `events`
        # by the time the query below runs, or still counted here; never in neither.
        unloaded = self._log_backlog()
        processed = self.processed_seq()
        row = self._store.fetch_one(
            "SELECT (SELECT coalesce(max(seq), 0) FROM events), "
            "(SELECT epoch(now()::TIMESTAMP - received_at) FROM events WHERE seq = ?)",
            [processed + 1],
        )
        assert row is not None
        failure = self.refresh_failure
        return Lag(
            processed_seq=processed,
            lag_events=max(int(row[0]) - processed, 0) + unloaded,
            log_backlog_events=unloaded,
            lag_seconds=round(float(row[1] or 0.0), 3),
            refresh_failure=failure.to_dict() if failure else None,
        )

    def processed_seq(self) -> int:
        return processed_seq(self._store)

    @property
    def refresh_failure(self) -> RefreshFailure | None:
        """The background refresh's last failure, once it failed pipeline_max_attempts
        times in a row (cleared by the next that succeeds)."""
        return self._loop.failure if self._loop is not None else None

    # -- the background loop ------------------------------------------------------

    def observe_timing(self, step: str, seconds: float, succeeded: bool) -> None:
        """Tell the timing observers how a step of the loop went."""
        for observe in self.timing_observers:
            observe(step, seconds, succeeded)

    def notify(self, _last_seq: int = 0) -> None:
        """Called after the loader commits: wake the background loop."""
        self._wake.set()

    def start(self) -> None:
        """Run in the background: load state, catch up, then follow the log."""
        self.computed = catalogue.load(self._store)
        # The first purge comes an hour after start, not while a demo or a backfill loads.
        self.purged_at = time.monotonic()
        self._loop = Loop(self, self._wake, self._stopping, self._ingest_commits)
        self._thread = threading.Thread(target=self._loop.run, name="tessera-pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.save_aggregates()

    def save_aggregates(self) -> None:
        """Persist the aggregates changed since they last were (a clean stop does, so
        the next start need not catch them up from the log)."""
        with self._lock:
            aggregates = self._aggregates
            if aggregates is None or self._unifier is None or not self._unsaved:
                return
            try:
                aggregate_store.save(self._store, aggregates, self._unsaved, self.processed_seq())
            except Exception as error:  # the next start catches them up from the log
                failure = failures.describe(error)
                log.error(
                    "computed-trait aggregates not saved (%s at %s); caught up at the next start",
                    failure.error_type,
                    failure.location,
                )
                return
            self._unsaved, self._saved_at = set(), time.monotonic()

    def watch_ingest(self, commits: Callable[[], int], backlog: Callable[[], int]) -> None:
        """Give the background loop a way to see ingest activity in this process (the
        syncs of its own collect path), and `lag` the events still in the log's files
        (not loaded yet)."""
        self._ingest_commits = commits
        self._log_backlog = backlog

    # -- memory -------------------------------------------------------------------

    @property
    def unifier(self) -> Unifier:
        if self._unifier is None:
            self._unifier = self._load()
        return self._unifier

    def load_memory(self) -> None:
        """Load the graph and summaries from the store, unless they are in memory."""
        with self._lock:
            self._ready()

    def forget_memory(self) -> None:
        """Drop memory that may be ahead of the store: the next batch reloads it."""
        self._unifier = None

    def _ready(self) -> None:
        """Memory loaded from the store (outside the tries: not the events' fault)."""
        _ = self.unifier

    def _load(self) -> Unifier:
        """The graph and summaries as persisted, the ledger's numbering and the events
        the pipeline steps over."""
        unifier = Unifier.restore(self._store, self.settings)
        self._aggregates = aggregate_store.restore(
            self._store, self._batch_definitions(), day_number(self.clock()), self.products
        )
        self._unsaved, self._saved_at = set(), 0.0
        self._ledger_id = stored.last_ledger_id(self._store)
        self._skipped = failures.skipped(self._store)
        self.changes.post_everyone()  # whatever memory held before may differ
        return unifier

    # -- one batch ----------------------------------------------------------------

    def _apply_batch(self, size: int) -> int:
        """Read, stitch and persist the next `size` seqs of the log, stepping over the
        dead-lettered ones; returns how many events it moved past."""
        unifier = self.unifier
        read = read_batch(self._store, self.processed_seq(), size)
        if not read:
            return 0
        skipped = self._skipped
        rows = [row for row in read if row[0] not in skipped] if skipped else read
        after = self.processed_seq()
        attributed, touched = unifier.apply(rows)
        changed = set(unifier.graph.changed_profiles)
        traits = self._traits_of_batch(unifier, after, read[-1][0], attributed)
        self._segment_changes.add(
            segments.Changes(
                events={row[_EVENT] for row in rows if row[_TYPE] == "track" and row[_EVENT]},
                traits=any(row[_TRAITS] for row in rows),
                # a tcf_consent trait carries consent too
                consent=any(row[_CONSENT] or row[_TCF] or row[_TRAITS] for row in rows),
                any_event=True,
                identity=bool(unifier.graph.new_links)
                or bool(changed - touched)
                or any(e.kind in ("new", "merge") for e in unifier.graph.ledger),
                computed=self._computed_changes(traits),
            )
        )
        try:
            self._ledger_id = persist.write_batch(
                self._store, unifier, read[-1][0], attributed, touched, self._ledger_id, traits
            )
        except Exception:
            self._unifier = None  # memory is ahead of the store: reload before going on
            raise
        self._remember_computed(traits)
        if traits.states is not None:  # committed
            self._unsaved, self._saved_at = set(), time.monotonic()
        # Streaming: segments are re-evaluated for just the profiles batches touched (and
        # those merged away, which leave), gathered for up to segment_interval_seconds.
        # One evaluation reads the events once whatever it covers, so evaluating after
        # every batch cost most of the pipeline's time with 50 segments (3k events/s).
        if not self._segment_touched:
            # The first touched batch since the last refresh starts the wait: a refresh
            # comes at most every interval after changes begin, never right after a batch.
            self._segments_due = max(
                self._segments_due, time.monotonic() + self.settings.segment_interval_seconds
            )
        self._segment_touched |= touched | changed
        self.changes.post(touched | changed)
        return len(read)

    def _batch_definitions(self) -> list[ComputedTrait]:
        """The definitions the batches keep. A traits file that cannot be read must not
        stop the batches (its refresh fails and is reported): they keep the others, and
        the file's traits are filled from the log once it reads again."""
        try:
            traits = catalogue.definitions(self._store, self.settings.computed_traits_file)
        except TesseraError:
            traits = catalogue.definitions(self._store, None)
        return catalogue.batch_traits(traits)

    def _traits_of_batch(
        self, unifier: Unifier, after: int, last: int, attributed: list[tuple[int, str]]
    ) -> aggregate_store.BatchTraits:
        """The batch's effect on computed traits (aggregates updated in memory, values of
        the profiles it touched), written with the batch so segments see them at once."""
        aggregates = self._aggregates
        assert aggregates is not None  # loaded with the unifier
        traits = aggregate_store.update(
            self._store,
            aggregates,
            unifier.graph,
            after,
            last,
            attributed,
            self.clock(),
            self.products,
        )
        # The aggregates are persisted every AGGREGATES_SAVE_SECONDS, not with each batch:
        # a profile active in several batches is written once, and a crash in between
        # loses nothing (they are caught up from the log on load: aggregate_store.restore).
        self._unsaved |= traits.valued.keys() | traits.removed
        if time.monotonic() - self._saved_at >= AGGREGATES_SAVE_SECONDS:
            traits.flush_states(aggregates, self._unsaved, last)
        return traits

    def _computed_changes(self, traits: aggregate_store.BatchTraits) -> set[str]:
        """The computed traits whose value the batch changed for some profile."""
        names: set[str] = set()
        for profile, valued in traits.valued.items():
            before = self.computed.get(profile, {})
            values = traits.values[profile]
            names.update(n for n in valued if n not in names and before.get(n) != values.get(n))
        return names

    def _remember_computed(self, traits: aggregate_store.BatchTraits) -> None:
        """After the batch commits: its values in memory, beside the RFM and signal
        traits the refresh keeps (a merged-away profile's go)."""
        computed = self.computed
        if (watching := self._watching) is not None:  # a refresh computes meanwhile
            for profile, names in traits.valued.items():
                watching.touched.setdefault(profile, set()).update(names)
            watching.removed.update(traits.removed)
        for profile in traits.removed:
            computed.pop(profile, None)
        for profile, valued in traits.valued.items():
            # A new dict, never one changed in place: readers on other threads may be
            # iterating the one they got.
            again = set(valued)
            kept = {n: v for n, v in computed.get(profile, {}).items() if n not in again}
            computed[profile] = kept | traits.values[profile]

    def _set_aside(self, seq: int) -> None:
        self._skipped.add(seq)
        self._held_back += 1
