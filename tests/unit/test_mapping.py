"""Import mappings: checked up front, rows converted with clear errors."""

from __future__ import annotations

import pytest

from tessera.errors import InvalidField, InvalidMapping
from tessera.events.importer import load_mapping
from tessera.events.mapping import Column, check_columns, convert, parse_mapping, row_to_message

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


IDS = {"identifiers": {"email": "e"}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # Was a 500 (csv.DictReader's TypeError) at import time.
        ({"csv": {"delimiter": "abc"}}, r"csv.delimiter must be one character.*'abc'"),
        ({"csv": {"delimiter": '"'}}, "csv.delimiter must be one character"),
        ({"csv": {"delimiter": 5}}, "csv.delimiter must be one character"),
        # Was silently ignored.
        ({"csv": 5}, r"csv must be a mapping of CSV options.*got 5"),
        ({"csv": ";"}, "csv must be a mapping"),
        ({"csv": {"delimeter": ";"}}, "csv has unknown option.*delimeter"),
        # Were a 500 when the mapping's columns were listed.
        ({"timestamp": ["a"]}, r"timestamp must be the column.*\['a'\]"),
        ({"event_column": {"a": 1}}, "event_column must be a column name"),
        ({"message_id": ""}, "message_id must be a column"),
        ({"timestamp_format": "%Q"}, "timestamp_format '%Q' is not a strptime format"),
        ({"timestamp_format": ["%Y"]}, "timestamp_format must be a strptime format"),
        ({"type": "track", "event": {"name": "x"}}, "event must be an event name"),
        ({"traits": [{"a": 1}]}, r"traits\[0\] must be a column name"),
        ({"traits": {"a": ""}}, "traits.a must be a column name"),
        ({"traits": {"a": {"column": "a", "typ": "number"}}}, "unknown key.*typ"),
        ({"identifiers": {"email": ""}}, "identifiers.email must name a column"),
        ({1: "x"}, "unknown key.*1"),
    ],
)
def test_mapping_values_of_the_wrong_shape_are_named(
    extra: dict[object, object], message: str
) -> None:
    with pytest.raises(InvalidMapping, match=message):
        parse_mapping({**IDS, **extra})


def test_tab_delimiter_and_numeric_event_name_are_accepted() -> None:
    mapping = parse_mapping({**IDS, "type": "track", "event": 2024, "csv": {"delimiter": "\t"}})
    assert (mapping.delimiter, mapping.event) == ("\t", "2024")


def test_whole_numbers_keep_every_digit() -> None:
    # Were rounded through a float: 123456789012345678901234567890 -> ...677877719597056.
    assert convert("123456789012345678901234567890", Column("n", "integer")) == (
        "123456789012345678901234567890"
    )
    assert convert("9007199254740993", Column("n", "number")) == 9007199254740993
    assert convert("12.5", Column("n", "number")) == 12.5
    assert convert("3.0", Column("n", "integer")) == 3


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "3.5"])
def test_numbers_json_cannot_carry_or_fractions_for_integers_are_refused(text: str) -> None:
    spec = Column("n", "integer" if text == "3.5" else "number")
    with pytest.raises(InvalidField, match=f"column 'n' value '{text}' is not a"):
        convert(text, spec)


def test_identifier_cell_holding_an_object_is_refused() -> None:
    mapping = parse_mapping({"identifiers": {"userId": "id"}})
    with pytest.raises(InvalidField, match="column 'id' holds a JSON object"):
        row_to_message(mapping, {"id": {"a": 1}}, 0)


def test_object_cell_mapped_to_a_string_becomes_its_json() -> None:
    assert convert({"a": [1]}, Column("c")) == '{"a":[1]}'


def test_mapping_yaml_nested_too_deep_is_invalid_mapping() -> None:
    # yaml.safe_load recurses: a RecursionError was a 500.
    with pytest.raises(InvalidMapping, match="nests too deep"):
        load_mapping("identifiers: " + "[" * 5000 + "]" * 5000)


def test_mapping_error_shows_an_aliased_value_briefly() -> None:
    # Nine levels of YAML aliases: a full repr of `type` would hold a billion items.
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        levels.append(f"&a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    with pytest.raises(InvalidMapping, match="mapping type") as caught:
        load_mapping(f"identifiers: {{email: e}}\ntype: [{', '.join(levels)}]")
    assert len(caught.value.message) < 500


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"csv": 5}, "csv", "csv must be a mapping"),
        ({"traits": {"a": ""}}, "traits", "traits.a must be a column name"),
        ({"identifiers": {"email": ""}}, "identifiers", "identifiers.email must name"),
        ({"type": "page"}, "type", "mapping type 'page'"),
        ({"colour": 1}, "colour", "mapping has unknown key(s) colour"),
        # Two problems: the first key in the mapping's order is reported.
        ({"type": "page", "traits": 5}, "type", "mapping type 'page'"),
        ({"event": " ", "csv": {"delimiter": "ab"}}, "event", "event must be an event name"),
    ],
)
def test_mapping_errors_carry_the_key_they_are_about(
    extra: dict[str, object], field: str, message: str
) -> None:
    # The field was None for every mapping error: the console could not point at the key.
    with pytest.raises(InvalidMapping) as caught:
        parse_mapping({**IDS, **extra})
    assert caught.value.field == field and caught.value.message.startswith(message)
