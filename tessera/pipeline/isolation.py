"""Taking a failing batch apart until the event that fails on its own is found.

A batch that raises is tried again (memory reloaded from the store: it may be ahead of it)
up to pipeline_max_attempts times, in case the cause was passing; then it is bisected so
that only events that fail on their own are set aside in the pipeline's dead letters
(`events/failures.py`), and the rest of the batch goes on. Loading memory happens outside
the tries: when it fails the store is at fault, not the events, and the caller retries
later. Logs say which batch and the exception's type, never its message (it may quote
personal data).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tessera.events import failures
from tessera.events.timestamps import utc_now
from tessera.store import Store

log = logging.getLogger("tessera.pipeline")

#: the pause before a failed batch is tried again, times the attempt number
RETRY_PAUSE_SECONDS = 0.5


def processed_seq(store: Store) -> int:
    """The last seq of the log the pipeline has moved past."""
    row = store.fetch_one("SELECT value FROM pipeline_state WHERE key = 'processed_seq'")
    return int(row[0]) if row else 0


@dataclass
class Isolation:
    """Runs batches for the pipeline, setting aside the events that fail on their own.

    The pipeline hands over what a try needs: `ready` loads memory from the store (its
    failure is not the events'), `apply(size)` processes the next `size` seqs and returns
    how many it moved past, `forget` drops memory that may be ahead of the store, and
    `set_aside(seq)` is told of each event dead-lettered."""

    store: Store
    attempts: int
    stopping: threading.Event
    ready: Callable[[], None]
    apply: Callable[[int], int]
    forget: Callable[[], None]
    set_aside: Callable[[int], None]

    def advance(self, size: int) -> int:
        """Process the next batch, however it goes; returns how many events of the log
        it moved past."""
        position = processed_seq(self.store)
        for attempt in range(1, self.attempts + 1):
            self.ready()
            try:
                return self.apply(size)
            except Exception as error:
                self.forget()
                log.warning(
                    "pipeline batch after seq %d failed (%s), attempt %d of %d",
                    position,
                    type(error).__name__,
                    attempt,
                    self.attempts,
                )
                if self.stopping.is_set():
                    raise  # shutting down: set nothing aside on the way out
                if attempt < self.attempts:
                    self.stopping.wait(RETRY_PAUSE_SECONDS * attempt)
        return self._isolate(position, size)

    def _isolate(self, position: int, size: int) -> int:
        """Bisect a batch that keeps failing: its first half, then a quarter..., until a
        single event fails; that one is tried alone and then held back (`_hold_back`),
        and the rest of the batch goes on. One bad event in a batch of n costs about
        log2(n) failed tries, each followed by a reload of memory from the store."""
        # The batch's last seq, without reading its rows (that may be what fails).
        last = self.store.fetch_one(
            "SELECT max(seq) FROM events WHERE seq > $after "
            "AND seq < (SELECT min(seq) FROM events WHERE seq > $after) + $size",
            {"after": position, "size": size},
        )
        if last is None or last[0] is None:
            return 0
        end = int(last[0])
        done, chunk = 0, size
        while (after := processed_seq(self.store)) < end:
            span = max(1, min(chunk, end - after))
            self.ready()
            try:
                moved = self.apply(span)
            except Exception as error:
                self.forget()
                if self.stopping.is_set():
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
        """The event after seq `after` failed alone: try it again up to `attempts` in
        all, then dead-letter it with its error and move the pipeline past it, in one
        transaction (if the store itself is failing, that fails too and nothing is lost)."""
        for _ in range(self.attempts - 1):
            self.ready()
            try:
                return self.apply(1)
            except Exception as again:
                self.forget()
                error = again
        found = self.store.fetch_one("SELECT min(seq) FROM events WHERE seq > ?", [after])
        if found is None or found[0] is None:
            raise error
        seq = int(found[0])
        failure = failures.describe(error)
        with self.store.transaction() as store:
            failures.record(store, seq, failure, self.attempts, utc_now())
            store.execute(
                "INSERT OR REPLACE INTO pipeline_state VALUES ('processed_seq', ?)", [seq]
            )
        self.set_aside(seq)
        log.error(
            "event seq %d failed %d times on its own (%s at %s): set aside in the pipeline's "
            "dead letters (`tessera events failed`); the pipeline goes on",
            seq,
            self.attempts,
            failure.error_type,
            failure.location,
        )
        return 1
