"""Import mappings: checked up front, rows converted with clear errors."""

from __future__ import annotations

import pytest

from tessera.errors import InvalidField, InvalidMapping
from tessera.events.mapping import check_columns, parse_mapping, row_to_message

TRACK = {
    "type": "track", "event": "Order Completed", "timestamp": "at",
    "timestamp_format": "%d/%m/%Y %H:%M",
    "identifiers": {"loyalty_id": "card", "email": "mail"},
    "properties": {"revenue": {"column": "total", "type": "number"}, "store": "shop"},
}  # fmt: skip


def test_track_row_becomes_a_segment_message() -> None:
    mapping = parse_mapping(TRACK)
    row = {
        "card": "LC1",
        "mail": " a@b.fr ",
        "total": "12.50",
        "shop": "Lyon",
        "at": "03/02/2024 14:05",
    }
    message = row_to_message(mapping, row, 0)
    assert message["type"] == "track" and message["event"] == "Order Completed"
    assert message["properties"] == {"revenue": 12.5, "store": "Lyon"}
    assert message["context"]["traits"] == {"email": "a@b.fr"}
    assert message["context"]["externalIds"] == [
        {"id": "LC1", "type": "loyalty_id", "collection": "users", "encoding": "none"}
    ]
    assert message["timestamp"] == "2024-02-03T14:05:00+00:00"


def test_message_id_is_stable_and_counts_identical_rows() -> None:
    mapping = parse_mapping(TRACK)
    row = {"card": "LC1", "mail": "", "total": "1", "shop": "x", "at": "03/02/2024 14:05"}
    first = row_to_message(mapping, row, 0)["messageId"]
    assert first == row_to_message(mapping, dict(row), 0)["messageId"]
    assert first != row_to_message(mapping, row, 1)["messageId"]


def test_bad_number_names_column_and_value() -> None:
    mapping = parse_mapping(TRACK)
    row = {"card": "LC1", "mail": "", "total": "12,5O", "shop": "x", "at": "03/02/2024 14:05"}
    with pytest.raises(InvalidField, match="column 'total' value '12,5O' is not a number"):
        row_to_message(mapping, row, 0)


def test_bad_timestamp_names_the_expected_format() -> None:
    mapping = parse_mapping(TRACK)
    row = {"card": "LC1", "mail": "", "total": "1", "shop": "x", "at": "2024-02-03"}
    with pytest.raises(InvalidField, match="does not match the format '%d/%m/%Y %H:%M'"):
        row_to_message(mapping, row, 0)


def test_identify_mapping_with_booleans_and_dates() -> None:
    mapping = parse_mapping(
        {
            "identifiers": {"userId": "id"},
            "traits": {
                "vip": {"column": "vip", "type": "boolean"},
                "since": {"column": "since", "type": "date"},
            },
        }
    )
    message = row_to_message(mapping, {"id": "u1", "vip": "Yes", "since": "2020-01-31"}, 0)
    assert message["userId"] == "u1"
    assert message["traits"] == {"vip": True, "since": "2020-01-31T00:00:00+00:00"}


def test_missing_columns_are_named() -> None:
    mapping = parse_mapping(TRACK)
    with pytest.raises(InvalidMapping, match=r"'card'.*its columns are: mail, total"):
        check_columns(mapping, ["mail", "total", "shop", "at"])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "identifiers"),
        ({"identifiers": {"email": "e"}, "type": "page"}, "'identify' or 'track'"),
        ({"identifiers": {"email": "e"}, "type": "track"}, "needs `event"),
        ({"identifiers": {"email": "e"}, "colour": 1}, "unknown key"),
        (
            {"identifiers": {"email": "e"}, "traits": {"a": {"column": "a", "type": "money"}}},
            "must be one of",
        ),
    ],
)
def test_mapping_errors_say_what_to_fix(document: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidMapping, match=message):
        parse_mapping(document)
