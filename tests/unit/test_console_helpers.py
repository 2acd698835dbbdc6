"""The console's pure parts: the session cookie, chart and matrix shapes, the error spot,
and the import form's mapping."""

from __future__ import annotations

import pytest

from tessera.errors import InvalidMapping
from tessera.events.mapping import document_from_form, parse_mapping
from tessera.segments.actions import History, HistoryDay, Overlap
from tessera.segments.parser import SegmentSyntaxError
from tessera.web import session
from tessera.web.pages import chart_series
from tessera.web.people import error_spot, overlap_matrix, size_series


def test_session_cookie_is_valid_until_it_expires_and_only_for_its_key() -> None:
    cookie = session.issue("key-a", now=1_000)
    assert session.is_valid(cookie, "key-a", now=1_000 + 60)
    assert not session.is_valid(cookie, "key-a", now=1_000 + session.LIFETIME_SECONDS + 1)
    assert not session.is_valid(cookie, "key-b", now=1_000)
    expires, _, signature = cookie.partition(".")
    forged = f"{int(expires) + 9999}.{signature}"
    assert not session.is_valid(forged, "key-a", now=1_000)
    assert not session.is_valid("", "key-a") and not session.is_valid("x.y", "key-a")


@pytest.mark.parametrize(
    ("asked", "kept"),
    [("/segments", "/segments"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
     ("/\\evil.example", "/"), (None, "/"), ("/profiles?q=a", "/profiles?q=a")],
)  # fmt: skip
def test_sign_in_only_returns_to_paths_on_this_server(asked: str | None, kept: str) -> None:
    assert session.safe_next(asked) == kept


def test_chart_series_fills_missing_days_with_zero() -> None:
    rows = [
        {"day": "2026-11-01", "source": "web", "channel": "web", "events": 3},
        {"day": "2026-11-02", "source": "crm", "channel": "crm", "events": 5},
        {"day": "2026-11-02", "source": "web", "channel": "web", "events": 1},
    ]
    series = chart_series(rows, "source")
    assert series["labels"] == ["2026-11-01", "2026-11-02"]
    assert series["datasets"] == [
        {"label": "crm", "data": [0, 5]},
        {"label": "web", "data": [3, 1]},
    ]


def test_size_series_carries_each_size_forward() -> None:
    histories = [
        History(segment="a", days=[HistoryDay(day="d1", change=2, size=2),
                                   HistoryDay(day="d3", change=-1, size=1)]),
        History(segment="b", days=[HistoryDay(day="d2", change=5, size=5)]),
    ]  # fmt: skip
    series = size_series(histories)
    assert series["labels"] == ["d1", "d2", "d3"]
    assert series["datasets"] == [{"label": "a", "data": [2, 2, 1]},
                                  {"label": "b", "data": [0, 5, 5]}]  # fmt: skip


def test_overlap_matrix_is_symmetric_with_shares_of_the_row() -> None:
    pairs = [
        Overlap(first="a", second="a", both_count=10),
        Overlap(first="a", second="b", both_count=5),
        Overlap(first="b", second="b", both_count=20),
    ]
    matrix = overlap_matrix(pairs)
    assert matrix["names"] == ["a", "b"]
    a, b = matrix["rows"]
    assert [c["count"] for c in a["cells"]] == [10, 5] and a["cells"][1]["share"] == 50
    assert [c["count"] for c in b["cells"]] == [5, 20] and b["cells"][0]["share"] == 25


def test_error_spot_marks_the_word_at_the_column() -> None:
    query = 'traits.country = "FR"\nand traits.contry = "x"'
    error = SegmentSyntaxError("unknown", line=2, column=5, source=query)
    spot = error_spot(query, error)
    assert spot is not None
    assert (spot["before"], spot["word"], spot["after"]) == ("and ", "traits.contry", ' = "x"')
    assert spot["headline"].startswith("unknown at line 2, column 5")


def test_error_spot_at_the_end_of_a_line_still_marks_something() -> None:
    query = "traits.age >"
    spot = error_spot(query, SegmentSyntaxError("x", line=1, column=13, source=query))
    assert spot is not None and spot["word"] == " " and spot["before"] == query


def test_import_form_becomes_a_mapping() -> None:
    document = document_from_form(
        kind="track",
        event="Order Completed",
        timestamp="at",
        identifiers="email = mail\n\nloyalty_id = card",
        properties="revenue = total : number",
    )
    mapping = parse_mapping(document)
    assert mapping.identifiers == {"email": "mail", "loyalty_id": "card"}
    assert mapping.properties["revenue"].type == "number"


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [("identifiers", "email", "should read `name = column`"),
     ("traits", "age = age : years", "type 'years' must be one of")],
)  # fmt: skip
def test_import_form_mistakes_name_the_line(field: str, text: str, message: str) -> None:
    with pytest.raises(InvalidMapping, match=message):
        document_from_form(kind="identify", **{field: text})


def test_a_trait_holding_a_list_or_an_object_is_shown_as_json_not_pythons_repr() -> None:
    from tessera.web.rendering import templates

    value = templates.env.filters["value"]
    assert value({"email": 11, "web": 2}) == '{"email":11,"web":2}'
    assert value(["a", 1]) == '["a",1]'
    assert value(None) == "—" and value(3) == "3" and value("x") == "x"
