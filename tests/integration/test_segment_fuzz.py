"""Hypothesis over the segment language (issue 10): random text and random near-valid
queries go through parse, check, compile and a preview against a real DuckDB store.
Whatever comes in, the only exception is a TesseraError with a 4xx status; and a query
that parses and checks also runs (its values were all checked before any SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.errors import TesseraError
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.segments.compiler import compile_segments
from tessera.segments.errors import SegmentCannotRun
from tessera.segments.parser import parse
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import send

COMPUTED = {"order_count"}
FUZZ = settings(
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    runtime = Runtime.open(Settings(data_dir=folder / "data", admin_token=ADMIN_TOKEN))
    send(runtime, [
        {"type": "track", "userId": f"u{n}", "event": "Order Completed", "messageId": f"o{n}",
         "properties": {"revenue": n * 7.5, "currency": "EUR"},
         "timestamp": f"2026-03-0{n}T10:00:00Z",
         "context": {"traits": {"country": "FR" if n % 2 else "DE", "age": 20 + n,
                                "signup": f"2025-0{n}-01T00:00:00Z", "vip": n > 3}}}
        for n in range(1, 7)
    ])  # fmt: skip
    runtime.pipeline.process()
    service.create(runtime.store, "base", 'traits.country = "FR"', COMPUTED)
    yield runtime
    runtime.close()


def through_everything(runtime: Runtime, query: str) -> None:
    """Preview (parse, check, compile, run); when it is accepted, the streaming form
    of the same tree runs too."""
    try:
        service.preview(runtime.store, query, COMPUTED)
    except SegmentCannotRun as e:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"checked but cannot run: {query!r}: {e.message}") from e
    except TesseraError as e:
        assert 400 <= e.status < 500, (query, e)
        assert e.message
        return
    compiled = compile_segments([parse(query)], now="2026-03-10 00:00:00", profiles=["x"])
    runtime.store.fetch_all(compiled.sql, compiled.parameters)


# -- random text ----------------------------------------------------------------------

TOKENS = st.sampled_from([
    "traits.country", "traits.age", "traits.signup", "traits.vip", "computed.order_count",
    "properties.revenue", "did", "event", '"Order Completed"', "count", "sum", "avg", "(", ")",
    "[", "]", ",", "=", "!=", "<", ">=", "and", "or", "not", "in", "last", "days", "weeks",
    "between", "where", "of", "now", "-", "has", "email", "seen", "on", "web", "segment",
    '"base"', "exists", "contains", "starts", "with", "true", "false", "anonymous", "known",
    "third_party", "lookalike", "0", "1", "-3", "2.5", "99999999999999999999", '"FR"',
    '"1997-13-01"', '"2026-01-01"', '"a\tb"', '"\x00"', '"\\q"', "\n", "\t", "\x01",
])  # fmt: skip


@FUZZ
@given(st.text(max_size=120))
def test_random_text_is_a_4xx_or_runs(shop: Runtime, text: str) -> None:
    through_everything(shop, text)


@FUZZ
@given(st.lists(TOKENS, min_size=1, max_size=25))
def test_random_token_soup_is_a_4xx_or_runs(shop: Runtime, tokens: list[str]) -> None:
    through_everything(shop, " ".join(tokens))


# -- near-valid queries ---------------------------------------------------------------

DATES = st.one_of(
    st.sampled_from([
        "2026-03-01", "1997-13-01", "19970101", "1997-02-30", "01/01/1997", "yesterday",
        "1997", "2026-03-01T10:00", "2026-03-01T10:00:00Z", "2026-03-01 10:00:00+02:00",
        "0000-01-01", "9999-12-31T23:59:59.999999-14:00", "2026-03-01T24:00",
    ]),
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(alphabet="0123456789-:TZ+ ", max_size=25),
)  # fmt: skip
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.sampled_from(["9" * 300, "9" * 301, "36500", "36501", "-0", "0.0000001"]),
)
STRINGS = st.text(max_size=12).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
) | st.sampled_from(['"FR"', '"a\tb"', '"\\u0000"', '"\\ud800"', '"\\q"', '"x\x00y"'])
UNITS = st.sampled_from(["minutes", "hours", "days", "weeks", "minute", "week"])
FIELDS = st.sampled_from(["traits.country", "traits.age", "traits.signup", "traits.vip",
                          "computed.order_count"])  # fmt: skip
OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
VALUES = st.one_of(
    STRINGS, NUMBERS, st.just("true"), st.just("false"), st.just("now"),
    st.builds(lambda n, u: f"now - {n} {u}", NUMBERS, UNITS),
)  # fmt: skip
WINDOWS = st.one_of(
    st.just(""),
    st.builds(lambda n, u: f" in last {n} {u}", NUMBERS, UNITS),
    st.builds(lambda a, b: f' between "{a}" and "{b}"', DATES, DATES),
)
FILTERS = st.one_of(
    st.just(""),
    st.builds(lambda o, v: f" where properties.revenue {o} {v}", OPS, VALUES),
)
CONDITIONS = st.one_of(
    st.builds(lambda f, o, v: f"{f} {o} {v}", FIELDS, OPS, VALUES),
    st.builds(lambda f, vs: f"{f} in [{', '.join(vs)}]", FIELDS, st.lists(VALUES, min_size=1,
                                                                          max_size=4)),
    st.builds(lambda f, s: f"{f} contains {s}", FIELDS, STRINGS),
    st.builds(lambda f: f"{f} exists", FIELDS),
    st.builds(lambda fl, w: f'did "Order Completed"{fl}{w}', FILTERS, WINDOWS),
    st.builds(lambda fn, w, o, n: f'{fn}(properties.revenue of "Order Completed"{w}) {o} {n}',
              st.sampled_from(["sum", "avg", "min", "max"]), WINDOWS, OPS, NUMBERS),
    st.builds(lambda w, o, n: f'count(event "Order Completed"{w}) {o} {n}', WINDOWS, OPS,
              NUMBERS),
    st.sampled_from(["has email", "has user_id", "seen on web", 'in segment "base"',
                     "anonymous", "known"]),
)  # fmt: skip
QUERIES = st.recursive(
    CONDITIONS,
    lambda inner: st.one_of(
        inner.map(lambda q: f"not {q}"),
        inner.map(lambda q: f"({q})"),
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
    ),
    max_leaves=30,
)


@FUZZ
@given(QUERIES)
def test_near_valid_queries_are_a_4xx_or_run(shop: Runtime, query: str) -> None:
    through_everything(shop, query)


@FUZZ
@given(QUERIES, st.integers(min_value=0), st.text(max_size=3))
def test_near_valid_queries_with_a_slip_are_a_4xx_or_run(
    shop: Runtime, query: str, at: int, slip: str
) -> None:
    position = at % (len(query) + 1)
    through_everything(shop, query[:position] + slip + query[position + 1 :])


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=17, max_value=3000), st.sampled_from(["not ", "not (has email and "]))
def test_deep_nesting_is_refused_not_a_crash(depth: int, opener: str) -> None:
    closer = ")" * depth if "(" in opener else ""
    try:
        parse(opener * depth + "has email" + closer)
    except TesseraError as e:
        assert e.status == 400 and e.code == "segment_too_complex"
    else:  # pragma: no cover
        raise AssertionError("accepted past the documented depth")
