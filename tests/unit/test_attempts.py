"""The per-address limit on wrong admin tokens (console sign-in and admin API)."""

from __future__ import annotations

from tessera.privacy import attempts
from tessera.privacy.attempts import FailedAttempts


def test_past_the_limit_an_address_waits_until_its_oldest_failure_leaves_the_minute() -> None:
    limit = FailedAttempts(per_minute=3)
    for second in (0.0, 10.0, 20.0):
        assert limit.retry_after("10.0.0.1", now=second) is None
        limit.failed("10.0.0.1", now=second)
    assert limit.retry_after("10.0.0.1", now=20.5) == 40  # the failure at 0 s leaves at 60 s
    assert limit.retry_after("10.0.0.2", now=20.5) is None  # other addresses are not held
    assert limit.retry_after("10.0.0.1", now=60.0) is None


def test_a_success_clears_the_address() -> None:
    limit = FailedAttempts(per_minute=1)
    limit.failed("10.0.0.1", now=0.0)
    assert limit.retry_after("10.0.0.1", now=1.0) == 59
    limit.succeeded("10.0.0.1")
    assert limit.retry_after("10.0.0.1", now=1.0) is None


def test_the_table_of_addresses_is_bounded() -> None:
    limit = FailedAttempts(per_minute=1)
    for n in range(attempts.MAX_CLIENTS + 5):
        limit.failed(f"client-{n}", now=0.0)
    assert limit.retry_after("client-0", now=1.0) is None  # the oldest were forgotten
    assert limit.retry_after(f"client-{attempts.MAX_CLIENTS + 4}", now=1.0) == 59
