"""Who an OIDC sign-in admits (`privacy/oidc.admit`), on a real store: auto-provision with
the mapped or default role, and a provisioned user has no password to guess."""

from __future__ import annotations

import pytest

from tessera.privacy import oidc, users
from tessera.runtime import Runtime


def test_auto_provision_creates_the_user_with_the_mapped_or_default_role(
    runtime: Runtime,
) -> None:
    settings = runtime.settings.model_copy(update={
        "oidc_auto_provision": True, "oidc_role_claim": "roles",
        "oidc_roles": {"crm-marketing": "marketer"},
    })  # fmt: skip
    first = oidc.admit(runtime.store, settings, {"email": "New@Example.com", "roles": []})
    assert (first.user, first.role, first.provisioned) == ("new@example.com", "analyst", True)
    second = oidc.admit(runtime.store, settings, {"email": "m@example.com",
                                                  "roles": "crm-marketing"})  # fmt: skip
    assert second.role == "marketer"
    again = oidc.admit(runtime.store, settings, {"email": "new@example.com"})
    assert (again.role, again.provisioned) == ("analyst", False)
    assert users.sign_in(runtime.store, "new@example.com", "!oidc") is None
    assert users.get(runtime.store, "new@example.com").last_sign_in is not None


def test_a_claim_that_is_no_user_name_is_refused_not_a_500(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"oidc_auto_provision": True})
    with pytest.raises(oidc.SignInRefused, match="no valid user name"):
        oidc.admit(runtime.store, settings, {"email": "a+b@example.com"})
    with pytest.raises(oidc.SignInRefused, match="no 'email' claim"):
        oidc.admit(runtime.store, settings, {"sub": "x"})


def test_an_unreachable_or_plain_http_provider_is_a_clear_error(runtime: Runtime) -> None:
    with pytest.raises(oidc.ProviderUnavailable, match="must be an https URL"):
        oidc.check_issuer("http://id.example.com/realms/acme")
    settings = runtime.settings.model_copy(update={
        "oidc_issuer": "http://127.0.0.1:9", "oidc_client_id": "tessera"})  # fmt: skip
    client = oidc.Client(settings)
    try:
        with pytest.raises(oidc.ProviderUnavailable, match="cannot be read"):
            client.begin("http://127.0.0.1/sign-in/oidc/callback")
    finally:
        client.close()
