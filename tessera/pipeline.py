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
from typing import Any

import orjson
import pyarrow as pa

from tessera.identity.graph import IdentityGraph, LedgerEntry
from tessera.identity.identifiers import Identifier, JunkRules, identifiers_of
from tessera.identity.rules import MergeRules
from tessera.profiles import catalogue
from tessera.profiles.summary import Summary
from tessera.profiles.view import profile_from_memory
from tessera.segments import service as segments
from tessera.settings import Settings
from tessera.store import Store

log = logging.getLogger(__name__)

_BATCH_SQL = """
SELECT seq, type, source_id, channel, user_id, anonymous_id, previous_id, email, phone,
       device_id, advertising_id, external_ids, epoch_us(timestamp) AS timestamp,
       CASE WHEN type <> 'group' THEN traits END AS traits,
       json_extract_string(traits, '$.country') AS country,
       json_extract(payload, '$.context.consent.categoryPreferences')::VARCHAR AS consent
FROM events WHERE seq > $after AND seq <= $after + $size ORDER BY seq
"""
# seq is dense (the writer numbers commits without gaps), so a range reads only the row
# groups it needs. `seq > ? ORDER BY seq LIMIT ?` made DuckDB scan and sort the rest of
# the log for every batch: at 5 million events the rebuild ran at 20k instead of 50k/s.
_COLUMNS = ("seq", "type", "source_id", "channel", "user_id", "anonymous_id", "previous_id",
            "email", "phone", "device_id", "advertising_id", "external_ids", "timestamp",
            "traits", "country", "consent")  # fmt: skip
DERIVED_TABLES = ("identities", "profiles", "profile_summaries", "event_profiles",
                  "identity_ledger", "pipeline_state", "computed_traits")  # fmt: skip
_WINDOW_REFRESH_SECONDS = 300
#: while ingest is busy: the batch size, and 1/10 of the time for the pipeline
_BUSY_BATCH = 2_000
#: under continuous ingest, computed traits are refreshed at most this often
_BUSY_REFRESH_SECONDS = 30
NOTABLE = ("merge", "conflict", "breaker")


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


def merge_rules(store: Store, settings: Settings) -> MergeRules:
    blocks = store.fetch_all("SELECT first, second FROM identity_blocks")
    pairs = [(_identifier(first), _identifier(second)) for first, second in blocks]
    return MergeRules.build(settings.identity_rules, settings.identity_max_identifiers, pairs)


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
        self._segments_at = 0.0

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
            self.flush_segments()
            if events and sweep:
                self.refresh_computed_traits()
        return PipelineRun(events, batches, time.perf_counter() - started)

    def refresh_computed_traits(self) -> int:
        """Materialise computed traits for every profile (they read the whole history)."""
        with self._lock:
            traits = catalogue.definitions(self._store, self._settings.computed_traits_file)
            count = catalogue.refresh(self._store, traits)
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
        try:
            self._persist(rows[-1][0], attributed, touched)
        except Exception:
            self._unifier = None  # memory is ahead of the store: reload before going on
            raise
        # Streaming: segments are re-evaluated for just the profiles batches touched (and
        # those merged away, which leave), gathered for up to segment_interval_seconds.
        # One evaluation reads the events once whatever it covers, so evaluating after
        # every batch cost most of the pipeline's time with 50 segments (3k events/s).
        self._segment_touched |= touched | changed
        if time.monotonic() - self._segments_at >= self._settings.segment_interval_seconds:
            self.flush_segments()
        return len(rows)

    def flush_segments(self) -> None:
        """Re-evaluate segments for the profiles touched since the last flush."""
        if self._segment_touched:
            segments.evaluate_touched(self._store, sorted(self._segment_touched))
            self._segment_touched = set()
        self._segments_at = time.monotonic()

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


class Unifier:
    """Identity then profile summaries, event by event, in memory (pure but for the
    source look-up). The pipeline persists what it changes; `as_of` replays with one."""

    def __init__(self, store: Store, settings: Settings, rules: MergeRules) -> None:
        self._store = store
        self._settings = settings
        self._junk = JunkRules.build(settings.identity_junk_values, settings.identity_junk_patterns)
        self.graph = IdentityGraph(rules)
        self.summaries: dict[str, Summary] = {}
        #: per live profile, the merges, conflicts and breaker trips that concern it
        self.notable: dict[str, list[LedgerEntry]] = {}
        self._sources: dict[str, tuple[str, int]] = {}

    def apply(self, rows: list[tuple[Any, ...]]) -> tuple[list[tuple[int, str]], set[str]]:
        """Stitch and summarise rows of `_BATCH_SQL`; returns (seq, profile) and the
        profiles that received events."""
        graph = self.graph
        attributed: list[tuple[int, str]] = []
        touched: set[str] = set()
        for row in rows:
            event = dict(zip(_COLUMNS, row, strict=True))
            seq = event["seq"]
            target = None
            if event["type"] == "alias" and event["previous_id"]:
                known = graph.profile(Identifier("user_id", event["previous_id"].strip()))
                target = "user_id" if known else "anonymous_id"
            identifiers = identifiers_of(
                event, self._junk, self._settings.default_region, alias_target=target
            )
            before = len(graph.ledger)
            profile = graph.stitch(seq, identifiers)
            if profile is None:
                continue
            for entry in graph.ledger[before:]:
                if entry.kind == "merge" and entry.other_profile is not None:
                    absorbed = self.summaries.pop(entry.other_profile, None)
                    if absorbed is not None:
                        self.summary(entry.profile).absorb(absorbed)
                    history = self.notable.pop(entry.other_profile, [])
                    self.notable.setdefault(entry.profile, []).extend(history)
                if entry.kind in NOTABLE and entry.profile:
                    self.notable.setdefault(entry.profile, []).append(entry)
            source_name, priority = self._source(event["source_id"])
            self.summary(profile).add_event(
                seq=seq,
                timestamp=event["timestamp"],
                channel=event["channel"],
                source=source_name,
                priority=priority,
                traits=orjson.loads(event["traits"]) if event["traits"] else None,
                consent=_object(event["consent"]),
            )
            attributed.append((seq, profile))
            touched.add(profile)
        return attributed, touched

    def summary(self, profile: str) -> Summary:
        found = self.summaries.get(profile)
        if found is None:
            found = self.summaries[profile] = Summary()
        return found

    def _source(self, source_id: str) -> tuple[str, int]:
        found = self._sources.get(source_id)
        if found is None:
            row = self._store.fetch_one(
                "SELECT name, channel FROM sources WHERE id = ?", [source_id]
            )
            name, channel = (row[0], row[1]) if row else (source_id, "")
            priorities = self._settings.trait_source_priority
            found = (name, priorities.get(name, priorities.get(channel, 0)))
            self._sources[source_id] = found
        return found


def read_batch(store: Store, after: int, size: int) -> list[tuple[Any, ...]]:
    """The next events after `after`, at most `size` seqs on. A gap in seq (events erased
    later) is skipped rather than mistaken for the end of the log."""
    rows = store.fetch_all(_BATCH_SQL, {"after": after, "size": size})
    while not rows:
        following = store.fetch_one("SELECT min(seq) FROM events WHERE seq > ?", [after])
        if following is None or following[0] is None:
            return []
        after = int(following[0]) - 1
        rows = store.fetch_all(_BATCH_SQL, {"after": after, "size": size})
    return rows


def replay(
    store: Store,
    settings: Settings,
    *,
    until_received: str | None = None,
    until_seq: int | None = None,
) -> Unifier:
    """A fresh Unifier fed the log up to a moment: the graph and profiles as they stood."""
    unifier = Unifier(store, settings, merge_rules(store, settings))
    last = 0
    limit_seq = until_seq
    if until_received is not None:
        row = store.fetch_one(
            "SELECT coalesce(max(seq), 0) FROM events WHERE received_at <= CAST(? AS TIMESTAMP)",
            [until_received],
        )
        limit_seq = int(row[0]) if row else 0
    while True:
        rows = read_batch(store, last, settings.pipeline_batch_size)
        rows = [r for r in rows if limit_seq is None or r[0] <= limit_seq]
        if not rows:
            return unifier
        unifier.apply(rows)
        unifier.graph.drain()
        last = rows[-1][0]


def _identifier(text: str) -> Identifier:
    kind, _, value = text.partition(":")
    return Identifier(kind, value)


def _object(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    parsed = orjson.loads(raw)
    return parsed if isinstance(parsed, dict) else None
