"""Ad platforms' normalisation and hashing rules (Google Customer Match, Meta Custom
Audiences), and the advertising consent rule."""

from __future__ import annotations

import hashlib

import pytest

from tessera.audiences import platforms
from tessera.audiences.exports import allows_advertising


@pytest.mark.parametrize(
    ("raw", "google", "meta"),
    [
        ("  Jane.Doe+news@GMail.com ", "janedoe@gmail.com", "jane.doe+news@gmail.com"),
        ("j.a.n.e@googlemail.com", "jane@googlemail.com", "j.a.n.e@googlemail.com"),
        ("Jane.Doe+x@Example.FR", "jane.doe+x@example.fr", "jane.doe+x@example.fr"),
        ("", None, None),
        ("   ", None, None),
        ("no-at-sign", None, None),
        # Identity keeps this address (whitespace removed): the export must send it too.
        ("Jean.Dupont @Example.com", "jean.dupont@example.com", "jean.dupont@example.com"),
        (None, None, None),
    ],
)
def test_emails_follow_each_platform(raw: str | None, google: str | None, meta: str | None) -> None:
    assert platforms.google_email(raw) == google
    assert platforms.meta_email(raw) == meta


def test_phones_keep_the_plus_for_google_and_drop_it_for_meta() -> None:
    assert platforms.google_phone("+33612345678") == "+33612345678"
    assert platforms.meta_phone("+33612345678") == "33612345678"
    assert platforms.google_phone("") is None and platforms.meta_phone(None) is None


def test_hashes_are_lower_hex_of_nfc_and_never_of_empty() -> None:
    decomposed = "jose\u0301@example.com"  # e + combining acute
    composed = "jos\u00e9@example.com"
    assert platforms.sha256_hex(decomposed) == platforms.sha256_hex(composed)
    assert platforms.sha256_hex(composed) == hashlib.sha256(composed.encode()).hexdigest()
    assert platforms.sha256_hex("") is None and platforms.sha256_hex("  ") is None
    assert platforms.sha256_hex(None) is None


def test_mobile_ad_ids_are_not_hashed() -> None:
    idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    assert platforms.mobile_ad_id(idfa) == idfa.lower()
    assert platforms.mobile_ad_id(" ") is None


@pytest.mark.parametrize(
    "raw",
    ["=cmd|' /c calc'!a0", "=HYPERLINK(\"http://x\")", "+1+1", "@SUM(1)", "-1",
     "6D92078A82464BA4AE5B76104861E7DC", "6d92078a-8246-4ba4-ae5b-76104861e7dcX",
     "{6d92078a-8246-4ba4-ae5b-76104861e7dc}", "00000000-0000-0000-0000-000000000000"],
)  # fmt: skip
def test_mobile_ad_ids_must_be_uuids(raw: str) -> None:
    assert platforms.mobile_ad_id(raw) is None


@pytest.mark.parametrize(
    ("consent", "required", "unless_refused"),
    [
        ({"Advertising": True, "Analytics": True}, True, True),
        ({"advertising": "granted"}, True, True),
        ({"Advertising": False}, False, False),
        ({"Analytics": True}, False, True),
        ({}, False, True),
        ({"Targeting": "no"}, False, False),
    ],
)
def test_advertising_consent(
    consent: dict[str, object], required: bool, unless_refused: bool
) -> None:
    assert allows_advertising(consent, "required") is required
    assert allows_advertising(consent, "unless_refused") is unless_refused
