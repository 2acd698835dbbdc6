"""The pure rules of access: roles by area, token scopes, masking, consent by purpose."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tessera.privacy import masking, roles
from tessera.profiles import consent
from tessera.profiles.unifier import consent_of
from tessera.settings import Settings


def test_areas_are_found_from_route_templates() -> None:
    assert roles.area_of("/api/segments/{name}") == "segments"
    assert roles.area_of("/api/audiences/{segment}/export") == "exports"
    assert roles.area_of("/api/profiles/{reference:path}/consent") == "consent"
    assert roles.area_of("/api/profiles/{reference:path}") == "profile"
    assert roles.area_of("/api/profiles") == "people"
    assert roles.area_of("/api/something-new") == roles.UNCLASSIFIED == "access"


def test_each_role_reaches_what_its_job_needs_and_no_more() -> None:
    assert roles.allowed("agent", "GET", "/api/profiles/{reference:path}")
    assert roles.allowed("agent", "POST", "/api/profiles/{reference:path}/consent")
    assert not roles.allowed("agent", "GET", "/api/profiles")
    assert not roles.allowed("agent", "GET", "/api/audiences/{segment}/export")
    assert not roles.allowed("agent", "PUT", "/api/segments/{name}")
    assert roles.allowed("marketer", "PUT", "/api/segments/{name}")
    assert not roles.allowed("marketer", "POST", "/api/users")
    assert roles.allowed("analyst", "GET", "/api/segments")
    assert roles.allowed("analyst", "POST", "/api/segments/check")  # a check only reads
    assert not roles.allowed("analyst", "POST", "/api/segments")
    assert roles.allowed("admin", "DELETE", "/api/anything/new")


def test_scopes_narrow_a_role_and_never_widen_it() -> None:
    scopes = frozenset({"segments:read", "users:write"})
    assert roles.allowed("admin", "GET", "/api/segments", scopes)
    assert not roles.allowed("admin", "POST", "/api/segments", scopes)
    assert not roles.allowed("marketer", "POST", "/api/users", frozenset({"access:write"}))
    assert roles.allowed("marketer", "POST", "/api/segments", frozenset({"*"}))


def test_masking_keeps_a_hint_and_hides_the_rest() -> None:
    assert masking.mask_text("write to jane.doe@gmail.com") == "write to j•••@gmail.com"
    assert masking.mask_text("call +447700900123") == "call +44•••••••123"
    document = {"name": "vip", "traits": {"name": "Jane Doe", "city": "Leeds"},
                "identifiers": [{"type": "user_id", "value": "u-42"}]}  # fmt: skip
    assert masking.mask_json(document) == {
        "name": "vip", "traits": {"name": "J•••", "city": "Leeds"},
        "identifiers": [{"type": "user_id", "value": "u•••"}],
    }  # fmt: skip


@given(st.emails())
def test_no_email_survives_masking(email: str) -> None:
    assert email not in masking.mask_html(f"<a href='/profiles/email:{email}'>{email}</a>")


def test_consent_policy_per_purpose_from_settings() -> None:
    settings = Settings(consent_defaults={"email": "required"})
    policies = settings.consent_policies()
    assert policies == {"analytics": "unless_refused", "personalisation": "unless_refused",
                        "email": "required", "advertising": "required"}  # fmt: skip
    assert not consent.allows({}, "email", policies)
    assert consent.allows({}, "analytics", policies)
    assert not consent.allows({"Marketing": "no"}, "email", policies)
    assert consent.allows({"Advertising": True}, "advertising", policies)


def test_a_tcf_string_becomes_consent_and_named_categories_win() -> None:
    refuses_all = "CP1jrQAP1jrQAEsABAENAwCgAAAAAAAAAAYgAAAAAAAA.YAAAAAAAAAAA"
    assert consent_of(None, refuses_all) == {
        "advertising": False,
        "personalisation": False,
        "analytics": False,
    }
    assert consent_of('{"analytics": true}', refuses_all)["analytics"] is True
    assert consent_of('{"analytics": true}', "garbage") == {"analytics": True}
