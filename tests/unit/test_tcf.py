"""The TCF decoder against strings written by the IAB's own encoder (@iabtcf/core; the
fixtures come from tests/fixtures/tcf/generate.js)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.errors import InvalidField
from tessera.profiles import tcf

FIXTURES = json.loads((Path(__file__).parents[1] / "fixtures/tcf/strings.json").read_text())


@pytest.mark.parametrize("case", FIXTURES, ids=[case["name"] for case in FIXTURES])
def test_decode_reads_what_the_iab_encoder_wrote(case: dict[str, Any]) -> None:
    decoded = tcf.decode(case["string"])
    assert decoded.version == case["version"]
    assert decoded.created == datetime.fromisoformat(case["created"])
    assert decoded.updated == datetime.fromisoformat(case["updated"])
    assert decoded.cmp_id == case["cmp_id"]
    assert decoded.cmp_version == case["cmp_version"]
    assert decoded.consent_screen == case["consent_screen"]
    assert decoded.consent_language == case["consent_language"]
    assert decoded.vendor_list_version == case["vendor_list_version"]
    assert decoded.policy_version == case["policy_version"]
    assert decoded.service_specific == case["service_specific"]
    assert decoded.publisher_country == case["publisher_country"]
    assert sorted(decoded.purposes_consented) == case["purposes_consented"]
    assert sorted(decoded.purposes_legitimate_interest) == case["purposes_legitimate_interest"]
    assert sorted(decoded.vendor_consents) == case["vendor_consents"]
    assert sorted(decoded.vendor_legitimate_interests) == case["vendor_legitimate_interests"]


def test_purposes_map_tcf_consent_to_ours() -> None:
    by_name = {case["name"]: tcf.decode(case["string"]) for case in FIXTURES}
    assert by_name["all-ads-purposes"].purposes() == {
        "advertising": True,
        "personalisation": False,
        "analytics": True,
    }
    assert by_name["refuses-everything"].purposes() == {
        "advertising": False,
        "personalisation": False,
        "analytics": False,
    }
    assert by_name["analytics-and-content"].purposes() == {
        "advertising": False,
        "personalisation": True,
        "analytics": False,
    }


UNREADABLE = ["", "not base64 !", "AAAA", "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"]  # last: TCF v1


@pytest.mark.parametrize("text", UNREADABLE)
def test_decode_refuses_unreadable_strings_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidField) as refused:
        tcf.decode(text)
    assert refused.value.field == "gdpr_consent"
    assert tcf.purposes_of(text) is None


@given(st.text(max_size=200))
def test_any_text_decodes_or_is_refused_never_crashes(text: str) -> None:
    assert tcf.purposes_of(text) is None or set(tcf.purposes_of(text) or {}) == set(tcf.PURPOSE_MAP)
