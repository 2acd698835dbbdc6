"""Computed-trait and signal-trait definitions, checked by pydantic models whose findings
come out as InvalidField naming the key, the value and what is expected."""

from __future__ import annotations

import pytest

from tessera.audiences.signals import SignalsDocument, parse
from tessera.errors import InvalidField
from tessera.profiles.computed import ComputedTrait, TraitDefinition, parse_definition


def test_a_trait_definition_becomes_a_computed_trait() -> None:
    trait = parse_definition(
        {"name": "eur_orders", "function": "sum", "event": "Order Completed",
         "property": "revenue", "where": {"currency": "EUR"}, "window_days": 90}
    )  # fmt: skip
    assert trait == ComputedTrait(
        "eur_orders", "sum", "Order Completed", "revenue", {"currency": "EUR"}, 90
    )


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ("count", "trait", "a computed trait is a mapping with name and function"),
        ({"name": "x", "function": "count", "b": 1, "a": 2}, "a",
         "unknown key(s) a, b in computed trait"),
        ({"function": "count"}, "name", "name None must be lower_snake_case"),
        ({"name": "Orders", "function": "count"}, "name", "name 'Orders' must be lower_snake_case"),
        ({"name": "order_count", "function": "count"}, "name", "'order_count' is a built-in"),
        ({"name": "x", "function": "median"}, "function", "function 'median' must be one of count"),
        ({"name": "x", "function": "max"}, "property", "function 'max' needs `property:`"),
        ({"name": "x", "function": "count", "where": {"a": [1]}}, "where",
         "where must map property names to plain values"),
        ({"name": "x", "function": "count", "window_days": -3}, "window_days",
         "window_days -3 must be a whole number of days from 1 to 36500"),
        ({"name": "x", "function": "count", "event": 7}, "event", "event must be an event name"),
        # Were accepted: a property name the SQL path could not use, a where key that was
        # a 500 when compiled (int has no .replace), true read as one day.
        ({"name": "x", "function": "count", "property": 5}, "property",
         "property 5 must name an event property"),
        ({"name": "x", "function": "count", "where": {1: "a"}}, "where", "where must map"),
        ({"name": "x", "function": "count", "window_days": True}, "window_days",
         "window_days True must be a whole number of days from 1"),
    ],
)  # fmt: skip
def test_trait_definition_errors_name_the_key_and_the_value(
    raw: object, field: str, message: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_definition(raw)
    assert caught.value.field == field and caught.value.message.startswith(message)


def test_trait_definition_model_is_what_the_api_takes() -> None:
    body = TraitDefinition.model_validate({"name": "app_opens", "function": "count"})
    assert parse_definition(body) == ComputedTrait("app_opens", "count")


def test_a_signal_definition_keeps_its_conditions_as_text() -> None:
    assert parse({"name": "tablet_reader", "when": {"device_type": "tablet", "utm_source": 5}}) == {
        "name": "tablet_reader", "when": {"device_type": "tablet", "utm_source": "5"},
        "value": True, "lifetime_days": 30,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (["x"], None, "a signal trait is a mapping with name, when and lifetime_days"),
        ({"name": "X!", "when": {"path_prefix": "/"}}, "name",
         "signal trait name 'X!' must be lower-case letters"),
        ({"name": "x"}, "when", "signal trait 'x' needs `when:` with at least one of"),
        ({"name": "x", "when": {}}, "when", "signal trait 'x' needs `when:`"),
        ({"name": "x", "when": {"weather": "rain"}}, "when", "unknown condition(s) weather"),
        ({"name": "x", "when": {"device_type": "watch"}}, "when.device_type",
         "device_type 'watch' must be one of mobile, tablet, desktop"),
        ({"name": "x", "when": {"path_prefix": "/"}, "lifetime_days": 0}, "lifetime_days",
         "lifetime_days 0 must be a whole number of days, at least 1"),
        ({"name": "x", "when": {"path_prefix": "/"}, "lifetime_days": "7"}, "lifetime_days",
         "lifetime_days '7' must be a whole number"),
        # Were accepted: a misspelt key silently ignored, an object stored as its repr.
        ({"name": "x", "when": {"path_prefix": "/"}, "lifetime": 7}, "lifetime",
         "unknown key(s) lifetime in signal trait 'x'"),
        ({"name": "x", "when": {"path_prefix": {"a": 1}}}, "when", "when {'path_prefix'"),
    ],
)  # fmt: skip
def test_signal_definition_errors_name_the_key_and_the_value(
    raw: object, field: str | None, message: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        parse(raw)
    assert caught.value.field == field and caught.value.message.startswith(message)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "a signals document is a mapping"),
        ({"categories": ["/travel"]}, "categories must map page path prefixes"),
        ({"signals": {"name": "x"}}, "signals must be a list of signal traits"),
        ({"signal": []}, "unknown key(s) signal in the signals document"),
        ({"signals": [{"name": "x", "when": {"path_prefix": "/"}}] * 2},
         "two signal traits have the same name"),
    ],
)  # fmt: skip
def test_signals_document_errors_say_what_to_fix(document: object, message: str) -> None:
    with pytest.raises(InvalidField, match=message.replace("(", r"\(").replace(")", r"\)")):
        SignalsDocument.model_validate(document)


def test_an_empty_yaml_section_is_none() -> None:
    checked = SignalsDocument.model_validate({"signals": None, "categories": None})
    assert (checked.signals, checked.categories, checked.taxonomy) == ([], {}, "iab-content")
