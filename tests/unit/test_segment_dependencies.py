"""Which segments a batch of changes can affect (streaming skips the others)."""

from __future__ import annotations

import pytest

from tessera.segments.parser import parse
from tessera.segments.service import Changes, affected

VIEWS_ONLY = Changes(events={"Product Viewed"}, traits=False, any_event=True, identity=False)


@pytest.mark.parametrize(("segment", "expected"), [
    ('did "Product Viewed" in last 7 days', True),
    ('did "Order Completed"', False),
    ('not did "Order Completed" in last 30 days', False),  # only the sweep (time) changes it
    ('count(event "Product Viewed") >= 3 and traits.country = "FR"', True),
    ('traits.country = "FR"', False),
    ("computed.order_count >= 2", False),  # changes at the computed-trait refresh
    ("seen on web", True),
    ("has email", False),
    ('in segment "viewers"', True),
    ('in segment "buyers"', False),
])  # fmt: skip
def test_a_batch_of_views_affects_only_what_reads_views(segment: str, expected: bool) -> None:
    assert affected(parse(segment), VIEWS_ONLY, {"viewers"}) is expected


def test_traits_and_identity_changes() -> None:
    assert affected(parse('traits.city = "Lyon"'), Changes(traits=True), set())
    assert affected(parse('did "Order Completed"'), Changes(identity=True), set())  # merges
    merged = Changes()
    merged.add(Changes(events={"Order Completed"}))
    merged.add(Changes(traits=True))
    assert affected(parse('did "Order Completed"'), merged, set())


def test_consent_changes_affect_third_party_conditions_only() -> None:
    # `has third_party` counts only people whose consent allows third-party enrichment.
    assert affected(parse("has third_party 720"), Changes(consent=True), set())
    assert not affected(parse("has third_party 720"), Changes(traits=True), set())
    assert not affected(parse('traits.city = "Lyon"'), Changes(consent=True), set())
