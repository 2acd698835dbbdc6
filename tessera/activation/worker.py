"""One destination's worker: reads after its position, sends, records, moves on.

Each destination has its own thread, its own pool of `concurrency` senders and its own
adaptive rate, so a destination that hangs or fails only ever waits on itself. A cycle:

1. dead letters marked for replay are sent first;
2. events after the position (up to the pipeline's horizon, `feed.py`) are filtered,
   checked against consent (refused ones counted as suppressed), mapped, cut into batches
   of `batch_size` (waiting up to `linger_seconds` for a batch to fill) and sent, the
   batches in parallel unless the destination keeps each user's order;
3. audience changes of its segments are sent the same way.

Each batch is retried (`backoff.py`) until it is delivered, refused (4xx: the batch is
split in halves so one bad message does not take the others with it, and what is left is
dead-lettered) or out of its retry window (dead-lettered as failed). As each batch settles, in
order, one transaction moves the position to its last event (compare-and-set, so a
`replay --since` made meanwhile wins), adds its dead letters and writes the delivery log.
A crash sends again the batches that were in flight, with the same messageIds: at least
once, with duplicates bounded by `batch_size` x `concurrency`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tessera.activation import dead_letters, deliveries, feed
from tessera.activation.backoff import AdaptiveRate, Verdict, delay, verdict
from tessera.activation.connectors import Connector
from tessera.activation.destinations import Configured
from tessera.activation.messages import AudienceChange, EventRow, Selector, audience_messages
from tessera.events.timestamps import utc_now
from tessera.profiles import consent
from tessera.store import Store

log = logging.getLogger(__name__)
Message = dict[str, Any]
IDLE_SECONDS = 0.05
AUDIENCE_SECONDS = 1.0


class Interrupted(Exception):
    """The worker was asked to stop while a batch was still unsettled."""


@dataclass(frozen=True)
class Refused:
    """Messages that go to the dead letters, and why."""

    batch: Sequence[Message]
    status: int | None
    reason: str


class Worker:
    """Delivers one destination (see the module). `start`, then `stop` when done."""

    def __init__(
        self,
        store: Store,
        destination: Configured,
        connector: Connector,
        source_ids: Sequence[str],
        advertising_policy: str | Mapping[str, str],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.destination = destination
        self.options = destination.options
        self.connector = connector
        self.selector = Selector(self.options, source_ids)
        self.policy = consent.policy_for(destination.purpose, advertising_policy)
        self.rate = AdaptiveRate(self.options.max_requests_per_second)
        self.tally = deliveries.Tally()
        self.rng = rng or random.Random()
        self.parallel = 1 if self.options.ordered else self.options.concurrency
        self.pool = ThreadPoolExecutor(self.parallel, thread_name_prefix=f"send-{destination.name}")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._next_start = 0.0
        self._waiting_since: float | None = None
        #: the events after a position, read while the batches before it were sent
        self._ahead: tuple[int, list[EventRow]] | None = None
        self._audience_due = 0.0
        self.thread = threading.Thread(
            target=self.run, name=f"destination-{destination.name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the request in flight (unsettled batches are sent again next time)."""
        self._stopping.set()
        self.thread.join(timeout)
        self.pool.shutdown(wait=False, cancel_futures=True)
        if not self.thread.is_alive():
            self.connector.close()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.cycle()
                if not busy:
                    self.connector.idle()
            except Interrupted:
                return
            except Exception as e:  # the store's trouble, a folder we cannot write: go on
                what = f"{type(e).__name__}: {e}"[:500]
                log.error("destination %s: %s", self.destination.name, what)
                with self._lock:
                    self.tally.failed(None, what)
                busy = False
                self._stopping.wait(1.0)
            if not busy:
                self._stopping.wait(IDLE_SECONDS)

    def cycle(self) -> bool:
        """One round of the three steps above; False when there was nothing to do."""
        busy = self._replay_dead_letters()
        busy = self._deliver_events() or busy
        now = time.monotonic()
        if self.options.segments and now >= self._audience_due:
            self._audience_due = now + AUDIENCE_SECONDS
            busy = self._sync_audiences() or busy
        return busy

    # -- events ---------------------------------------------------------------------------

    def _deliver_events(self) -> bool:
        if not self.options.events:
            return False
        start = feed.position(self.store, self.destination.id)
        upto = feed.horizon(self.store)
        if upto <= start:
            self._waiting_since = None
            return False
        wanted = self.options.batch_size * self.parallel
        if upto - start < self.options.batch_size and not self._lingered():
            return False
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == start:
            rows = ahead[1]
        else:
            rows = feed.read_events(self.store, start, upto, wanted)
        self._waiting_since = None
        messages, seqs, suppressed = self._messages(rows)
        size = self.options.batch_size
        batches = [messages[i : i + size] for i in range(0, len(messages), size)]
        futures = [self.pool.submit(self._send, batch) for batch in batches]
        if rows[-1].seq < upto:  # read the next events while these are on their way
            self._ahead = (rows[-1].seq, feed.read_events(self.store, rows[-1].seq, upto, wanted))
        # Each batch settled in order moves the position to its last event, so a crash
        # sends again at most the batches still in flight, not the whole cycle.
        ends = [seqs[min(i + size, len(seqs)) - 1] for i in range(0, len(seqs), size)]
        position = start
        for index, future in enumerate(futures):
            refused = future.result()
            last = rows[-1].seq if index == len(futures) - 1 else ends[index]
            final = index == len(futures) - 1
            position = self._advance(position, last, refused, suppressed if final else 0, final)
        if not futures:
            self._advance(position, rows[-1].seq, [], suppressed, True)
        return True

    def _advance(
        self, position: int, to: int, refused: Sequence[Refused], suppressed: int, final: bool
    ) -> int:
        """Move the position from `position` to `to` with what the batch left to record
        (compare-and-set: a `replay --since` made meanwhile wins); the delivery log is
        written with the cycle's last batch (or a batch that left dead letters)."""
        with self.store.transaction():
            self.store.execute(
                "UPDATE destination_positions SET event_seq = ?, updated_at = ? "
                "WHERE destination_id = ? AND event_seq = ?",
                [to, utc_now(), self.destination.id, position],
            )
            if final or refused:
                self._record(refused, suppressed)
        return to

    def _lingered(self) -> bool:
        """Has a partial batch waited `linger_seconds` for more?"""
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        return now - self._waiting_since >= self.options.linger_seconds

    def _messages(self, rows: Sequence[EventRow]) -> tuple[list[Message], list[int], int]:
        """The messages to send, the seq of each, and how many consent suppressed."""
        messages: list[Message] = []
        seqs: list[int] = []
        suppressed = 0
        for row in rows:
            if not self.selector.selects(row):
                continue
            if not consent.allows(row.consent, self.destination.purpose, self.policy):
                suppressed += 1
                continue
            message = self.selector.message(row)
            if message is not None:
                messages.append(message)
                seqs.append(row.seq)
        return messages, seqs, suppressed

    # -- audiences ------------------------------------------------------------------------

    def _sync_audiences(self) -> bool:
        limit = self.options.batch_size * self.parallel
        changes = feed.audience_changes(
            self.store, self.destination.id, self.options.segments, limit
        )
        if not changes:
            return False
        messages, suppressed = self._audience_messages(changes)
        refused = self._send_all(messages)
        with self.store.transaction():
            feed.record_told(self.store, self.destination.id, changes)
            self._record(refused, suppressed)
        return True

    def _audience_messages(self, changes: Sequence[AudienceChange]) -> tuple[list[Message], int]:
        messages: list[Message] = []
        suppressed = 0
        for change in changes:
            if not consent.allows(change.consent, self.destination.purpose, self.policy):
                suppressed += 1
                continue
            messages += audience_messages(change, self.destination.id, self.options.identifiers)
        return messages, suppressed

    # -- dead letters ---------------------------------------------------------------------

    def _replay_dead_letters(self) -> bool:
        queued = dead_letters.requested(self.store, self.destination.id, self.options.batch_size)
        if not queued:
            return False
        refused = self._send_all([message for _, message in queued])
        refused_ids = {str(m.get("messageId")) for r in refused for m in r.batch}
        with self.store.transaction():
            delivered = [i for i, m in queued if str(m.get("messageId")) not in refused_ids]
            if delivered:
                dead_letters.settle(self.store, delivered, True, None, "")
            for item in refused:
                ids = [i for i, m in queued if m in item.batch]
                dead_letters.settle(self.store, ids, False, item.status, item.reason)
            deliveries.record(self.store, self.destination.id, self.tally)
        return True

    # -- sending --------------------------------------------------------------------------

    def _send_all(self, messages: Sequence[Message]) -> list[Refused]:
        """Send every batch of `messages`; what was refused. Raises Interrupted on stop."""
        size = self.options.batch_size
        batches = [messages[i : i + size] for i in range(0, len(messages), size)]
        futures = [self.pool.submit(self._send, batch) for batch in batches]
        refused: list[Refused] = []
        for future in futures:
            refused += future.result()
        return refused

    def _send(self, batch: Sequence[Message]) -> list[Refused]:
        """One batch until it settles (see the module)."""
        deadline = time.monotonic() + self.options.retry_hours * 3600
        attempt = 0
        while True:
            self._pace()
            outcome = self.connector.send(batch)
            self.rate.answered(outcome.status, outcome.seconds)
            judged = verdict(outcome.status)
            with self._lock:
                if outcome.status is not None:
                    self.tally.answered(outcome.seconds)
                if judged is Verdict.DELIVERED:
                    self.tally.count("delivered", len(batch))
                    return []
                self.tally.failed(outcome.status, _what(outcome.status), outcome.detail)
            if judged is Verdict.DEAD:
                if len(batch) > 1:  # find the bad ones: the others still go
                    half = len(batch) // 2
                    return self._send(batch[:half]) + self._send(batch[half:])
                with self._lock:
                    self.tally.count("dead_lettered", len(batch))
                return [Refused(batch, outcome.status, f"refused: {outcome.detail}")]
            attempt += 1
            wait = delay(attempt, self.rng, outcome.retry_after)
            if time.monotonic() + wait > deadline:
                with self._lock:
                    self.tally.count("failed", len(batch))
                reason = f"not delivered within {self.options.retry_hours:g} h: {outcome.detail}"
                return [Refused(batch, outcome.status, reason)]
            with self._lock:
                self.tally.count("retried", len(batch))
            if self._stopping.wait(wait):
                raise Interrupted

    def _pace(self) -> None:
        """Wait for this destination's rate to allow one more request."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.rate.interval
        if start > now and self._stopping.wait(start - now):
            raise Interrupted
        if self._stopping.is_set():
            raise Interrupted

    def _record(self, refused: Sequence[Refused], suppressed: int) -> None:
        with self._lock:
            self.tally.count("suppressed", suppressed)
            for item in refused:
                dead_letters.add(
                    self.store, self.destination.id, item.batch, item.status, item.reason
                )
            deliveries.record(self.store, self.destination.id, self.tally)


def _what(status: int | None) -> str:
    return f"HTTP {status}" if status is not None else "no answer (timeout or connection)"
