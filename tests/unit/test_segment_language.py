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
from tessera.segments.errors import SegmentTooComplex, SegmentValueError
from tessera.segments.literals import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_SECONDS,
    MAX_VALUES,
    ValueProblem,
    check_stored,
)
from tessera.segments.parser import SegmentSyntaxError, parse
from tessera.segments.tree import Compare, Did, EventRef, HasIdentifier, Window, from_json, to_json

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
    'did "Order Completed" where product.category starts with "Sport" in last 30 days',
    'count(event "Product Viewed" where (product.brand = "Acme" and product.name contains '
    '"shoe" and properties.source = "app")) >= 3 and not did "Order Completed" where '
    "product.price > 100",
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


# -- values and limits (issue 10, A.1 and B): clear errors at the spot, never a 500 ------


@pytest.mark.parametrize("date", [
    "1997-13-01", "19970101", "1997-02-30", "01/01/1997", "yesterday", "1997",
    "1997-01-01T25:00", "1997-1-1",
])  # fmt: skip
def test_dates_that_are_not_dates_are_refused_at_the_spot(date: str) -> None:
    source = f'did "Order Completed" between "{date}" and "1998-04-01"'
    with pytest.raises(SegmentValueError) as caught:
        parse(source)
    error = caught.value
    assert error.status == 400 and error.code == "segment_invalid_value"
    assert f"'{date}'" in error.message and '"YYYY-MM-DD"' in error.message
    assert (error.line, error.column) == (1, source.index(f'"{date}"') + 1)
    assert error.message.endswith(" " * (error.column - 1) + "^")


def test_a_reversed_range_is_refused_naming_both_ends() -> None:
    with pytest.raises(SegmentValueError, match=r"ends \(1997-01-01\) before or when it starts"):
        parse('did "x" between "1997-04-01" and "1997-01-01"')


def test_times_are_read_in_utc_and_dates_kept_as_written() -> None:
    tree = parse('did "x" between "2024-01-01" and "2024-03-01T10:30:00+02:00"')
    assert isinstance(tree, Did) and tree.window is not None
    assert (tree.window.start, tree.window.end) == ("2024-01-01", "2024-03-01 08:30:00")
    tree = parse('did "x" between "2024-01-01T00:00Z" and "2024-01-02 12:00"')
    assert isinstance(tree, Did) and tree.window is not None
    assert (tree.window.start, tree.window.end) == ("2024-01-01 00:00:00", "2024-01-02 12:00:00")


def test_a_tab_inside_a_quoted_value_is_kept_as_text() -> None:
    assert parse('traits.city = "a\tb"') == Compare("traits", "city", "=", "a\tb")


@pytest.mark.parametrize(("inside", "expected"), [
    ("a\x00b", "control character '\\x00'"),
    ("a\x01b", "control character '\\x01'"),
    ("a\nb", "control character '\\n'"),
    ("a\\qb", "invalid escape"),
    ("\\ud800", "invalid escape"),
])  # fmt: skip
def test_control_characters_and_bad_escapes_are_refused_at_the_spot(
    inside: str, expected: str
) -> None:
    source = f'traits.city = "{inside}"'
    with pytest.raises(SegmentValueError) as caught:
        parse(source)
    assert expected in caught.value.message
    assert caught.value.line == 1 and caught.value.column >= len('traits.city = "')


def test_escapes_inside_quotes_are_read() -> None:
    assert parse(r'traits.city = "a\"b\\c\u00e9"') == Compare("traits", "city", "=", 'a"b\\cé')


@pytest.mark.parametrize(("source", "expected"), [
    ('did "x" in last 99999999999999999999 days', "longer than the limit of 36,500 days"),
    ("traits.signup < now - 5300 weeks", "longer than the limit of 36,500 days"),
    ('did "x" in last -5 days', "cannot be negative"),
    ("traits.age > " + "9" * 400, "more than 300 digits"),
    ('count("x") >= ' + "9" * 301, "more than 300 digits"),
])  # fmt: skip
def test_numbers_windows_and_offsets_are_bounded(source: str, expected: str) -> None:
    with pytest.raises(SegmentValueError, match=expected):
        parse(source)


def test_the_longest_window_is_accepted() -> None:
    tree = parse('did "x" in last 36500 days')
    assert isinstance(tree, Did) and tree.window == Window(seconds=MAX_SECONDS)


@pytest.mark.parametrize(("source", "expected"), [
    ("not " * 3000 + "has email", f"more than {MAX_DEPTH} levels"),
    ("(" * 3000 + "has email" + ")" * 3000, None),  # parentheses alone nest nothing
    (" and ".join(["has email"] * 2000), f"more than {MAX_CONDITIONS} conditions"),
    ("traits.a in [" + ", ".join(["1"] * 1001) + "]", "the limit is 1,000"),
    ("has email or " * 9000 + "has email", "the limit is 100,000"),
])  # fmt: skip
def test_deep_nesting_and_many_conditions_are_refused(source: str, expected: str | None) -> None:
    if expected is None:
        assert parse(source) == HasIdentifier("email")
        return
    with pytest.raises(SegmentTooComplex, match=expected) as caught:
        parse(source)
    assert caught.value.status == 400 and caught.value.code == "segment_too_complex"


def test_segments_at_the_limits_compile() -> None:
    """What the parser accepts, the compiler compiles: the limits sit below the SQL
    parser's recursion (nesting) and DuckDB's expression depth (long and/or chains)."""
    deepest = [
        "not " * MAX_DEPTH + "has email",
        "not (has email and " * (MAX_DEPTH // 2) + "has email" + ")" * (MAX_DEPTH // 2),
        'not (did "x" where properties.a = 1 or ' * (MAX_DEPTH // 2) + "has email"
        + ")" * (MAX_DEPTH // 2),
        " or ".join(['did "x" in last 2 days'] * MAX_CONDITIONS),
        "traits.a in [" + ", ".join(str(n) for n in range(MAX_VALUES)) + "]",
    ]  # fmt: skip
    for source in deepest:
        compiled = compile_segment(parse(source), now="2026-01-01 00:00:00")
        assert compiled.sql.startswith(("WITH", "SELECT"))


def test_an_error_at_the_end_after_a_new_line_points_at_it() -> None:
    with pytest.raises(SegmentSyntaxError, match="ends too early"):
        parse("traits.country =\n")


def test_stored_trees_are_checked_again() -> None:
    with pytest.raises(ValueProblem, match="'1997-02-30' is not a date that exists"):
        check_stored(Did(EventRef("x"), Window(start="1997-02-30", end="1997-04-01")))
    with pytest.raises(ValueProblem, match="not a trait or property name"):
        check_stored(Compare("traits", 'a"b', "=", "x"))
    check_stored(parse('did "x" between "2024-01-01" and "2024-02-01" and traits.a > now - 1 day'))
