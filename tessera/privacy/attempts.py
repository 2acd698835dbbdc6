"""Limiting guesses of the admin token: the console's sign-in and the admin API's bearer
token both count wrong tokens per client address, in one table per server."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

#: The window failed attempts are counted over.
WINDOW_SECONDS = 60.0
#: Client addresses remembered at once; the least recently failing are forgotten first, so
#: a flood of addresses cannot grow the table without bound.
MAX_CLIENTS = 10_000


class FailedAttempts:
    """Wrong admin tokens per client address over the last minute. Past `per_minute` of
    them the address must wait (`retry_after`) until the oldest leaves the window, whatever
    it sends: a right guess then is refused too, or guessing would go on at the same speed.
    In memory: a restart forgets."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> int | None:
        """Seconds `client` must wait before trying again, or None when it may try now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._recent(client, now)
            if failures is None or len(failures) < self.per_minute:
                return None
            return max(1, math.ceil(failures[0] + WINDOW_SECONDS - now))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._recent(client, now) or deque()
            failures.append(now)
            self._failures[client] = failures
            self._failures.move_to_end(client)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        while failures and failures[0] <= now - WINDOW_SECONDS:
            failures.popleft()
        return failures
