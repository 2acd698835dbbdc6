"""Identifier normalisation and junk: the same person written two ways must meet."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.identity.identifiers import (
    Identifier,
    JunkRules,
    identifiers_of,
    normalise,
    parse_identifier,
)

JUNK = JunkRules.build()


@pytest.mark.parametrize(("kind", "raw", "region", "expected"), [
    ("email", "  Jane.Doe@Example.COM ", None, "jane.doe@example.com"),
    ("email", "not-an-address", None, None),
    ("phone", "06 12 34 56 78", "FR", "+33612345678"),
    ("phone", "0033612345678", "FR", "+33612345678"),
    ("phone", "+33 6 12 34 56 78", None, "+33612345678"),
    ("phone", "0151 12345678", "DE", "+4915112345678"),
    ("phone", "06 12 34 56 78", None, None),  # national number, no region: unknowable
    ("phone", "12", "FR", None),
    ("advertising_id", "6D92078A-8246-4BA4-AE5B-76104861E7DC", None,
     "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
    ("user_id", "  u-1 ", None, "u-1"),
])  # fmt: skip
def test_normalise(kind: str, raw: str, region: str | None, expected: str | None) -> None:
    assert normalise(kind, raw, region=region) == expected


@given(st.emails())
def test_email_normalisation_is_idempotent(address: str) -> None:
    once = normalise("email", address)
    assert once is None or normalise("email", once) == once


@given(st.from_regex(r"\+33 ?6 ?[1-5]\d( ?\d\d){3}", fullmatch=True))
def test_phone_normalisation_is_idempotent(number: str) -> None:
    once = normalise("phone", number)
    assert once is None or normalise("phone", once) == once


@pytest.mark.parametrize(
    "value",
    ["null", "undefined", "0", "test@test.com", "NULL", "00000000-0000-0000-0000-000000000000"],
)
def test_junk_values_are_never_identifiers(value: str) -> None:
    event = {"user_id": value, "anonymous_id": value, "email": value, "advertising_id": value}
    assert identifiers_of(event, JUNK, None) == []


def test_configured_junk_values_and_patterns() -> None:
    junk = JunkRules.build(["+33170000000"], [r"@example\.org$"])
    event = {"phone": "+33 1 70 00 00 00", "email": "bot@example.org", "user_id": "u"}
    assert identifiers_of(event, junk, None) == [Identifier("user_id", "u")]


def test_identifiers_of_an_event() -> None:
    event = {
        "user_id": "u1",
        "anonymous_id": "a1",
        "email": "A@B.co",
        "phone": "06 12 34 56 78",
        "device_id": "D1",
        "advertising_id": None,
        "country": "FR",
        "external_ids": '[{"type": "loyalty_id", "id": "LC9"}, {"type": "email", "id": "a@b.co"}]',
    }
    assert identifiers_of(event, JUNK, None) == [
        Identifier("user_id", "u1"),
        Identifier("anonymous_id", "a1"),
        Identifier("email", "a@b.co"),
        Identifier("phone", "+33612345678"),
        Identifier("device_id", "d1"),
        Identifier("loyalty_id", "LC9"),
    ]


def test_parse_identifier_normalises_and_explains() -> None:
    assert parse_identifier("email: Jane@X.com ") == Identifier("email", "jane@x.com")
    with pytest.raises(ValueError, match="TYPE:VALUE"):
        parse_identifier("jane@x.com")
    with pytest.raises(ValueError, match="not a valid phone"):
        parse_identifier("phone:12")
