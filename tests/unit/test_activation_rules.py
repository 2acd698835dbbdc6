"""The pure rules of delivery: verdicts, backoff, Retry-After, the adaptive rate, consent,
messages, mappings and options."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.activation import backoff, messages, options
from tessera.activation.backoff import AdaptiveRate, Verdict, verdict
from tessera.activation.deliveries import percentiles
from tessera.errors import InvalidField
from tessera.profiles.consent import allows


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (None, Verdict.RETRY),
     (408, Verdict.RETRY), (429, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY),
     (400, Verdict.DEAD), (401, Verdict.DEAD), (404, Verdict.DEAD), (413, Verdict.DEAD)],
)  # fmt: skip
def test_verdict_retries_what_retrying_can_fix_and_dead_letters_the_rest(
    status: int | None, expected: Verdict
) -> None:
    assert verdict(status) is expected


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_backoff_stays_under_its_exponential_ceiling(attempt: int, seed: int) -> None:
    wait = backoff.delay(attempt, random.Random(seed))
    assert 0 <= wait <= min(backoff.CAP_SECONDS, backoff.BASE_SECONDS * 2**attempt)


def test_backoff_honours_a_longer_retry_after() -> None:
    assert backoff.delay(1, random.Random(1), retry_after=30) == 30


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert backoff.parse_retry_after("7", now) == 7
    assert backoff.parse_retry_after("Mon, 30 Nov 2026 12:00:10 GMT", now) == 10
    assert backoff.parse_retry_after("soon", now) is None
    assert backoff.parse_retry_after(None, now) is None


def test_adaptive_rate_halves_on_429_and_climbs_back_on_quick_answers() -> None:
    rate = AdaptiveRate(100)
    rate.answered(429, 0.01)
    rate.answered(429, 0.01)
    assert rate.rate == 25
    rate.answered(200, 3.0)  # slow: the destination is struggling
    assert rate.rate == 12.5
    for _ in range(50):
        rate.answered(200, 0.01)
    assert rate.rate == 100


@pytest.mark.parametrize(
    ("consent", "purpose", "policy", "allowed"),
    [({}, "advertising", "required", False), ({}, "advertising", "unless_refused", True),
     ({"Advertising": True}, "advertising", "required", True),
     ({"targeting": "no"}, "advertising", "unless_refused", False),
     ({"Analytics": False}, "analytics", "unless_refused", False),
     ({"Analytics": False}, "email", "unless_refused", True),
     ({"Marketing": "granted"}, "email", "required", True)],
)  # fmt: skip
def test_consent_rule_answers_each_purpose(
    consent: dict[str, object], purpose: str, policy: str, allowed: bool
) -> None:
    assert allows(consent, purpose, policy) is allowed


def test_mapping_renames_drops_hashes_and_sets_without_touching_the_input() -> None:
    message = {"properties": {"price": 3, "email": " Ann@X.io "}, "context": {"ip": "1.2.3.4"}}
    steps = [options.MappingStep(rename="properties.price", to="properties.amount"),
             options.MappingStep(drop="context.ip"), options.MappingStep(hash="properties.email"),
             options.MappingStep(set="context.destination", value="crm")]  # fmt: skip
    mapped = messages.apply_mapping(message, steps)
    assert mapped == {
        "properties": {"amount": 3, "email": hashlib.sha256(b"ann@x.io").hexdigest()},
        "context": {"destination": "crm"},
    }
    assert message["properties"]["price"] == 3


def test_audience_messages_keep_their_ids_when_sent_again() -> None:
    change = messages.AudienceChange("s1", "vip", "p1", True, datetime(2026, 1, 1),
                                     {"email": ["a@x.io"], "user_id": ["u1"]})  # fmt: skip
    first = messages.audience_messages(change, "d1", ["user_id", "email_sha256"])
    again = messages.audience_messages(change, "d1", ["user_id", "email_sha256"])
    assert [m["messageId"] for m in first] == [m["messageId"] for m in again]
    assert first[0]["event"] == "Audience Entered" and first[1]["traits"]["vip"] is True
    other = messages.audience_messages(change, "d2", ["user_id"])
    assert first[0]["messageId"] != other[0]["messageId"]


@pytest.mark.parametrize(
    ("kind", "document", "field"),
    [("webhook", {}, "url"), ("segment", {"url": "http://a"}, "write_key"),
     ("files", {}, "directory"), ("files", {"directory": "s3://bucket/lake"}, "directory"),
     ("webhook", {"url": "http://a", "batch_size": 0}, "batch_size"),
     ("webhook", {"url": "http://a", "identifiers": ["shoe_size"]}, "identifiers"),
     ("meta_custom_audiences", {"url": "http://a", "audience_id": "1"}, "segments"),
     ("webhook", {"url": "http://a", "mapping": [{"drop": "a", "hash": "b"}]}, "mapping")],
)  # fmt: skip
def test_options_refuse_what_cannot_work_naming_the_field(
    kind: str, document: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidField) as refused:
        options.check(kind, document)
    assert refused.value.field == field


def test_percentiles_by_nearest_rank() -> None:
    assert percentiles([]) == (None, None, None)
    assert percentiles([float(n) for n in range(1, 101)]) == (50.0, 95.0, 99.0)
