"""When to send again, and how fast: pure rules the delivery workers follow.

- `verdict`: what an answer means. 2xx delivered; timeouts, connection errors, 408, 429
  and 5xx are worth retrying; any other 4xx will fail the same way again, so it goes to
  the dead letters at once.
- `delay`: exponential backoff with full jitter (a uniform draw between 0 and the capped
  exponential, "Exponential Backoff and Jitter", AWS Architecture Blog, 2015), so many
  workers failing at once do not come back at once; a `Retry-After` the destination gave
  wins when it is longer.
- `AdaptiveRate`: additive increase, multiplicative decrease of the requests per second
  (TCP's congestion rule): halve on 429 or a slow answer, add a little on each quick one.
"""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime
from enum import Enum

DELIVERED_STATUSES = range(200, 300)
BASE_SECONDS = 0.5
CAP_SECONDS = 300.0


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


def verdict(status: int | None) -> Verdict:
    """What an answer's status means; None is no answer (timeout, refused connection)."""
    if status is None or status in (408, 429) or status >= 500:
        return Verdict.RETRY
    if status in DELIVERED_STATUSES:
        return Verdict.DELIVERED
    return Verdict.DEAD


def delay(attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds to wait before try number `attempt + 1` (attempt counts from 1)."""
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** min(attempt, 30))
    jittered = rng.uniform(0, ceiling)
    return max(jittered, retry_after) if retry_after is not None else jittered


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A Retry-After header as seconds: either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(min(int(text), int(CAP_SECONDS * 12)))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now.replace(tzinfo=UTC)).total_seconds())


class AdaptiveRate:
    """Requests per second a destination is sent, between `floor` and `ceiling`."""

    def __init__(self, ceiling: float, floor: float = 0.5, slow_seconds: float = 2.0) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.slow_seconds = slow_seconds
        self.rate = ceiling

    def answered(self, status: int | None, seconds: float) -> None:
        """Adjust to one answer: throttled or slow halves the rate, quick raises it."""
        if status in (429, None) or seconds > self.slow_seconds:
            self.rate = max(self.floor, self.rate / 2)
        elif status is not None and status < 500:
            self.rate = min(self.ceiling, self.rate + max(1.0, self.ceiling / 20))

    @property
    def interval(self) -> float:
        """Seconds between the starts of two requests."""
        return 1.0 / self.rate
