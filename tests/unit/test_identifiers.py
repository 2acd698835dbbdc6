"""Identifier normalisation and junk: the same person written two ways must meet."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tessera.identity.identifiers import (
    Identifier,
    JunkRules,
    identifiers_of,
    mask,
    normalise,
    parse_identifier,
    read_identifiers,
)

JUNK = JunkRules.build()


@pytest.mark.parametrize(("kind", "raw", "region", "expected"), [
    ("email", "  Jane.Doe@Example.COM ", None, "jane.doe@example.com"),
    ("email", "not-an-address", None, None),
    ("email", "Jean.Dupont @Example.com", None, "jean.dupont@example.com"),
    ("email", "jean .dupont@\texample.com\n", None, "jean.dupont@example.com"),
    ("email", "jean\u200b.dupont@example.com\ufeff", None, "jean.dupont@example.com"),
    ("email", "jean dupont", None, None),
    ("phone", "06 12 34 56 78", "FR", "+33612345678"),
    ("phone", "0033612345678", "FR", "+33612345678"),
    ("phone", "+33 6 12 34 56 78", None, "+33612345678"),
    ("phone", "0151 12345678", "DE", "+4915112345678"),
    ("phone", "06 12 34 56 78", None, None),  # national number, no region: unknowable
    ("phone", "12", "FR", None),
    # Possible but not valid for libphonenumber's metadata: kept (issue 10, C).
    ("phone", "+33 6 39 98 76 54", None, "+33639987654"),
    ("phone", "06 39 98 76 54", "FR", "+33639987654"),
    ("phone", "+33 6 39 98 76 54 1", None, None),  # too long for France
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


@given(st.text())
def test_email_normalisation_of_any_text_is_idempotent(text: str) -> None:
    once = normalise("email", text)
    assert once is None or normalise("email", once) == once


@given(st.from_regex(r"\+33 ?6 ?[1-5]\d( ?\d\d){3}", fullmatch=True))
def test_phone_normalisation_is_idempotent(number: str) -> None:
    once = normalise("phone", number)
    assert once is None or normalise("phone", once) == once


@example("+54000000000000", None)  # lost a leading zero at each parse
@given(st.from_regex(r"\+?[0-9 ()\-]{2,20}", fullmatch=True), st.sampled_from([None, "FR", "US"]))
def test_any_kept_phone_is_e164_and_normalises_to_itself(number: str, region: str | None) -> None:
    once = normalise("phone", number, region=region)
    if once is not None:
        assert once.startswith("+") and once[1:].isdigit()
        assert normalise("phone", once) == once
        assert normalise("phone", once, region="DE") == once


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
    assert parse_identifier("Loyalty ID:LC9") == Identifier("loyalty_id", "LC9")


def test_values_that_cannot_be_identifiers_come_back_with_their_reason() -> None:
    event = {
        "user_id": "u1",
        "email": "jean.dupont@",
        "phone": "06 12 34 56 78",  # national, and no country anywhere
        "external_ids": '[{"type": "Loyalty ID", "id": "LC9"}, {"type": "9x", "id": "A-123456"}]',
    }
    read = read_identifiers(event, JUNK, None)
    assert read.identifiers == [Identifier("user_id", "u1"), Identifier("loyalty_id", "LC9")]
    reasons = {d.type: d.reason for d in read.dropped}
    assert reasons["email"].startswith("not an e-mail address")
    assert "national number without a country" in reasons["phone"]
    assert "'9x' is not an identifier type" in reasons["external_id"]
    masked = {d.type: d.masked for d in read.dropped}
    assert masked == {"email": "je…t@", "phone": "06…78", "external_id": "A-…56"}
    assert all(len(d.fingerprint) == 16 for d in read.dropped)


def test_junk_and_blank_values_are_not_reported_as_dropped() -> None:
    read = read_identifiers({"user_id": "null", "email": "  ", "phone": "unknown"}, JUNK, "FR")
    assert read.identifiers == [] and read.dropped == []


def test_mask_keeps_too_little_to_read_a_value() -> None:
    assert mask("jean.dupont@example") == "je…le"
    assert mask("abcdef") == "a…f"
    assert mask("abc") == "…"


def test_phone_lookups_accept_numbers_outside_the_metadata() -> None:
    assert parse_identifier("phone:+33 6 39 98 76 54") == Identifier("phone", "+33639987654")
    with pytest.raises(ValueError, match="too short"):
        parse_identifier("phone:+33 6 39")
