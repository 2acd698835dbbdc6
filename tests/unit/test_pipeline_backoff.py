"""When the background loop tries a failing refresh again (pure: times are passed in)."""

from __future__ import annotations

from tessera.pipeline.loop import REFRESH_PAUSE_SECONDS, Backoff


def test_a_failing_refresh_is_tried_again_after_a_growing_pause_then_at_the_slow_pace() -> None:
    backoff = Backoff(limit=3, slow_seconds=300)
    assert backoff.ready(now=0.0)
    assert not backoff.failed(now=10.0)
    assert not backoff.ready(now=10.0) and backoff.ready(now=10.0 + REFRESH_PAUSE_SECONDS)
    assert not backoff.failed(now=20.0)
    assert backoff.ready(now=20.0 + 2 * REFRESH_PAUSE_SECONDS)
    assert backoff.failed(now=30.0)  # the limit: record it
    assert not backoff.ready(now=329.0) and backoff.ready(now=330.0)
    assert backoff.failed(now=330.0)  # still failing: recorded again, still slow
    assert backoff.failures == 4 and backoff.ready(now=630.0)


def test_a_success_starts_afresh() -> None:
    backoff = Backoff(limit=2, slow_seconds=300)
    backoff.failed(now=0.0)
    backoff.succeeded()
    assert backoff.ready(now=0.0)
    assert not backoff.failed(now=1.0)  # the count starts again
