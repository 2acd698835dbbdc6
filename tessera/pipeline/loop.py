"""The background loop: when the pipeline processes batches, refreshes, sweeps and purges.

Acknowledging events comes first: while this process's own collect path is syncing to the
event log, the pipeline works a tenth of the time (it sleeps nine times as long as each batch
took) and lets its lag grow; when ingest pauses it catches up flat out. Measured when the
request handlers committed to DuckDB: without this, ingest fell from ~55k to ~17k events/s.
Under load the batches are small too: a batch holds the GIL for its whole Python part, and a
20,000-event one stalled request handling for ~0.4 s. Only requests answered in this process
count (`watch_ingest`): they share its GIL; collector processes appending to the log do not,
so their load never slows the pipeline.

Each batch keeps the computed traits of the profiles it touched (profiles/aggregates.py), so
the whole-population refresh (windows sliding with the day, RFM over the population, signal
traits, and a sweep of every segment) is not needed for freshness: after catching up it runs
only once the time since the last one is REFRESH_SHARE_FACTOR times what the last one took
(it used to run on every catch-up, which under continuous ingest is every few tens of
milliseconds, and a refresh over a million events took seconds), at most every
BUSY_REFRESH_SECONDS while ingest never pauses (or REFRESH_SHARE_FACTOR times its own
last duration when that is longer), and every WINDOW_REFRESH_SECONDS anyway.
A refresh, or a streaming segment flush, that fails is tried again a few times with a
growing pause (`Backoff`); after pipeline_max_attempts failures in a row it is recorded
(`RefreshFailure`, shown by stats and the console) and tried again only at the sweep's
pace, while batches go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from tessera.events import failures
from tessera.events.timestamps import iso_utc, utc_now
from tessera.pipeline.runs import RefreshFailure
from tessera.settings import Settings

log = logging.getLogger("tessera.pipeline")

WINDOW_REFRESH_SECONDS = 300
PURGE_SECONDS = 3600
#: while ingest is busy: the batch size, and 1/10 of the time for the pipeline
BUSY_BATCH = 2_000
#: under continuous ingest, computed traits are refreshed at most this often
BUSY_REFRESH_SECONDS = 30
#: after catching up, the whole-population refresh waits this many times its own last
#: duration since the previous one (so it takes at most ~1/10 of the pipeline's time)
REFRESH_SHARE_FACTOR = 10
#: the pause before a failed refresh is tried again, times the number of failures
REFRESH_PAUSE_SECONDS = 0.5
#: the pause after an unexpected failure of the loop itself (the store, loading memory)
LOOP_PAUSE_SECONDS = 1.0


@dataclass
class Backoff:
    """When to try a failing step again (pure: the caller passes the monotonic time).

    Failures in a row are tried again after REFRESH_PAUSE_SECONDS times their number;
    from the `limit`-th on, the failure is `given_up` (to record) and the next try waits
    `slow_seconds`. A success starts afresh."""

    limit: int
    slow_seconds: float
    failures: int = 0
    due: float = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.due

    def failed(self, now: float) -> bool:
        """Count a failure at `now`; True when it reaches the limit (record it)."""
        self.failures += 1
        given_up = self.failures >= self.limit
        pause = self.slow_seconds if given_up else REFRESH_PAUSE_SECONDS * self.failures
        self.due = now + pause
        return given_up

    def succeeded(self) -> None:
        self.failures, self.due = 0, 0.0


class Followed(Protocol):
    """What the loop drives: the Pipeline (driver.py), seen from here."""

    settings: Settings
    refreshed_at: float
    purged_at: float
    predicted_at: float

    def load_memory(self) -> None: ...
    def forget_memory(self) -> None: ...
    def run_batch(self, size: int) -> int: ...
    def segments_due(self) -> bool: ...
    def flush_segments(self) -> None: ...
    def begin_refresh(self) -> Callable[[], object]: ...
    def finish_refresh(self, outcome: Callable[[], Any]) -> int: ...
    def purge_expired(self) -> object: ...
    def refresh_predictions(self) -> None: ...
    def observe_timing(self, step: str, seconds: float, succeeded: bool) -> None: ...


class Loop:
    """Follows the log on a thread for one pipeline (see the module's docstring)."""

    def __init__(
        self,
        pipeline: Followed,
        wake: threading.Event,
        stopping: threading.Event,
        ingest_commits: Callable[[], int],
    ) -> None:
        self._pipeline = pipeline
        self._settings = pipeline.settings
        self._wake = wake
        self._stopping = stopping
        self._ingest_commits = ingest_commits
        self._backoff = Backoff(self._settings.pipeline_max_attempts, WINDOW_REFRESH_SECONDS)
        #: the last failure of a refresh (or segment flush) that kept failing, until one works
        self.failure: RefreshFailure | None = None
        #: whether ingest was committing during the last batch (the next one is small)
        self._busy = False
        #: seconds the last whole-population refresh took (it spaces the next one)
        self._refresh_cost = 0.0
        #: the refresh computing on its worker thread, and when it began
        self._worker: ThreadPoolExecutor | None = None
        self._pending: Future[object] | None = None
        self._refresh_started = 0.0

    def run(self) -> None:
        pipeline = self._pipeline
        try:
            pipeline.load_memory()  # look-ups from memory now
        except Exception as error:
            # Not fatal: the first batch loads it again (and reports if it still fails).
            failure = failures.describe(error)
            log.error(
                "pipeline could not load its state (%s at %s)", failure.error_type, failure.location
            )
        stale = False
        while not self._stopping.is_set():
            self._wake.wait(self._settings.pipeline_interval_seconds)
            self._wake.clear()
            try:
                stale = self._collect_refresh() is False or stale
                stale = self._follow(stale)
                if time.monotonic() - pipeline.purged_at > PURGE_SECONDS:
                    pipeline.purge_expired()  # anonymous data past its lifetime
                every = self._settings.predict_refresh_hours * 3600
                if every and time.monotonic() - pipeline.predicted_at > every:
                    self._refresh(pipeline.refresh_predictions, "predict")  # refit, rescore
                since = time.monotonic() - pipeline.refreshed_at
                if (
                    since > WINDOW_REFRESH_SECONDS
                    or (stale and since >= REFRESH_SHARE_FACTOR * self._refresh_cost)
                ) and self._start_refresh():
                    stale = False
            except Exception as error:
                # Type and place only: an exception's message may quote personal data.
                failure = failures.describe(error)
                log.error(
                    "pipeline step failed (%s at %s); it will be retried",
                    failure.error_type,
                    failure.location,
                )
                pipeline.forget_memory()  # reload from the store: memory may be ahead of it
                self._stopping.wait(LOOP_PAUSE_SECONDS)
        if self._worker is not None:  # a refresh still computing is not applied
            self._worker.shutdown(wait=True)

    def _follow(self, stale: bool) -> bool:
        """Process batches until caught up (or stopping); returns whether computed traits
        are stale (events arrived since their last refresh)."""
        pipeline = self._pipeline
        size = self._settings.pipeline_batch_size
        while not self._stopping.is_set():
            commits, started = self._ingest_commits(), time.monotonic()
            if not pipeline.run_batch(min(size, BUSY_BATCH) if self._busy else size):
                break
            pipeline.observe_timing("batch", time.monotonic() - started, True)
            stale = True
            if pipeline.segments_due():
                self._refresh(pipeline.flush_segments, "segments")
            self._busy = self._ingest_commits() != commits
            if self._busy:
                self._stopping.wait(9 * (time.monotonic() - started))
            # Under continuous ingest too, the refresh takes at most ~1/REFRESH_SHARE_FACTOR
            # of the pipeline's time: over a growing population it takes seconds, and
            # running it every BUSY_REFRESH_SECONDS whatever it cost starved the batches.
            stale = self._collect_refresh() is False or stale
            every = max(BUSY_REFRESH_SECONDS, REFRESH_SHARE_FACTOR * self._refresh_cost)
            if time.monotonic() - pipeline.refreshed_at > every and self._start_refresh():
                stale = False
        return stale

    def _start_refresh(self) -> bool:
        """Begin the whole-population refresh: its snapshot here, its work on the worker
        thread while batches go on (`pipeline/refresh.py`); True when it began. Not while
        one computes, nor while a failing one waits for its next try."""
        if self._pending is not None or not self._backoff.ready(time.monotonic()):
            return False
        started = time.monotonic()
        try:
            work = self._pipeline.begin_refresh()
        except Exception as error:
            if self._stopping.is_set():
                raise
            self._failed(error, "refresh", started)
            return False
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="tessera-refresh")
        self._refresh_started = started
        self._pending = self._worker.submit(work)
        self._pending.add_done_callback(lambda _done: self._wake.set())
        return True

    def _collect_refresh(self) -> bool | None:
        """Apply the refresh once its work is done: True when it succeeded, False when it
        failed (the work or the writing), None when none was done."""
        pending = self._pending
        if pending is None or not pending.done():
            return None
        self._pending = None
        started = self._refresh_started
        succeeded = self._refresh(
            lambda: self._pipeline.finish_refresh(pending.result), "refresh", started
        )
        if succeeded:
            self._refresh_cost = time.monotonic() - started
        return succeeded

    def _refresh(self, step: Callable[[], object], name: str, started: float | None = None) -> bool:
        """Run a refresh step unless a failing one waits for its next try; True when it
        ran and succeeded. Its failure does not stop batches, nor drop memory (a refresh
        writes no state the graph depends on). Timed from `started` (default: now)."""
        if not self._backoff.ready(time.monotonic()):
            return False
        started = time.monotonic() if started is None else started
        try:
            step()
        except Exception as error:
            if self._stopping.is_set():
                raise
            self._failed(error, name, started)
            return False
        self._pipeline.observe_timing(name, time.monotonic() - started, True)
        self._backoff.succeeded()
        self.failure = None
        return True

    def _failed(self, error: Exception, name: str, started: float) -> None:
        """Count a refresh step's failure: logged, then recorded once it keeps failing."""
        self._pipeline.observe_timing(name, time.monotonic() - started, False)
        failure = failures.describe(error)
        attempts = self._backoff.failures + 1
        if self._backoff.failed(time.monotonic()):
            self.failure = RefreshFailure(failure, attempts, iso_utc(utc_now()) or "")
            log.error(
                "pipeline refresh failed %d times in a row (%s at %s): recorded "
                "(`tessera stats`); tried again in %d s, batches go on",
                attempts,
                failure.error_type,
                failure.location,
                WINDOW_REFRESH_SECONDS,
            )
        else:
            log.warning(
                "pipeline refresh failed (%s at %s), attempt %d of %d",
                failure.error_type,
                failure.location,
                attempts,
                self._backoff.limit,
            )
