"""The segment language, golden: source → tree (JSON) → SQL → description.

Cases live in tests/golden/segments.json. After an intended change, regenerate with
`TESSERA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_segment_language.py` and read the
diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from tessera.segments.compiler import compile_segment
from tessera.segments.describe import describe
from tessera.segments.parser import SegmentSyntaxError, parse
from tessera.segments.tree import from_json, to_json

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "segments.json"
SOURCES = [
    'traits.country = "FR" and count(event "Order Completed" in last 90 days) >= 2 '
    'and not did "Email Opened" in last 30 days',
    'sum(properties.revenue of event "Order Completed" where properties.currency = "EUR" '
    "in last 30 days) > 100 or has email",
    'traits.city in ["Lyon", "Paris"] and (seen on web or in segment "vip")',
    "traits.signup_date < now - 2 weeks and traits.newsletter = true",
    'did "Product Viewed" where (properties.category = "shoes" and properties.price >= 50) '
    'between "2024-01-01" and "2024-02-01"',
    'computed.order_count exists and traits.email contains "@gmail" '
    'and traits.name starts with "J"',
    'avg(properties.revenue of "Order Completed") >= 20.5 and not (traits.plan != "free")',
    'max(properties.price of event "Product Viewed" in last 12 hours) < 10',
    'anonymous and has third_party "IAB:Interest | Travel"',
    "known and not has third_party 720",
    'in lookalike "travel-like" or in segment "vip"',
]


def case(source: str) -> dict[str, Any]:
    tree = parse(source)
    compiled = compile_segment(tree, now="2026-01-01 00:00:00")
    return {
        "source": source,
        "tree": to_json(tree),
        "sql": compiled.sql,
        "parameters": {k: v for k, v in compiled.parameters.items()},
        "description": describe(tree),
    }


def test_golden_cases() -> None:
    produced = [case(source) for source in SOURCES]
    if os.environ.get("TESSERA_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(orjson.dumps(produced, option=orjson.OPT_INDENT_2))
    expected = orjson.loads(GOLDEN.read_bytes())
    for got, want in zip(produced, expected, strict=True):
        assert got == want, f"golden mismatch for {got['source']!r}"


@pytest.mark.parametrize("source", SOURCES)
def test_text_and_json_round_trip(source: str) -> None:
    tree = parse(source)
    assert from_json(orjson.loads(orjson.dumps(to_json(tree)))) == tree


@pytest.mark.parametrize(("source", "message", "column"), [
    ('traits.country = ', "ends too early", 16),
    ('traits.country == "FR"', "unexpected '='", 17),
    ('count(event "x") >= ', "ends too early", 18),
    ('traits.country = "FR" &', "unexpected character '&'", 23),
    ("", "empty", 1),
])  # fmt: skip
def test_syntax_errors_point_at_the_spot(source: str, message: str, column: int) -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse(source)
    assert message in caught.value.message
    assert caught.value.column == column
    assert caught.value.message.rstrip().endswith("^")


def test_descriptions_read_as_english() -> None:
    assert (
        describe(parse('not did "Email Opened" in last 1 day'))
        == 'did not do "Email Opened" in the last 1 day'
    )
    assert (
        describe(parse('traits.a = "x" or (traits.b > 2 and has phone)'))
        == 'a is "x", or (b is more than 2, and has a known phone)'
    )
