"""OIDC sign-in through a real `tessera serve` and a real local provider
(`tests/oidc_provider.py`): the whole authorization code flow with PKCE over HTTP, the
role mapping, and each refusal (signature, audience, expiry, nonce, state, unknown and
disabled users), every one of them in the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.conftest import LiveServer, start_server
from tests.oidc_provider import FakeProvider

pytestmark = pytest.mark.slow

SECRET = "provider-client-secret-0123456789"
JANE = "jane@example.com"
OPS = "ops@example.com"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider("tessera", SECRET)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, provider: FakeProvider) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("oidc") / "data", TESSERA_COLLECTORS="0",
        TESSERA_OIDC_ISSUER=provider.issuer, TESSERA_OIDC_CLIENT_ID="tessera",
        TESSERA_OIDC_CLIENT_SECRET=SECRET, TESSERA_OIDC_PROVIDER_NAME="Fake IdP",
        TESSERA_OIDC_ROLE_CLAIM="groups", TESSERA_SIGN_IN_FAILURES_PER_MINUTE="100",
        TESSERA_OIDC_ROLES=json.dumps({"cdp-admins": "admin", "marketing": "marketer"}),
    )  # fmt: skip
    for name, role in ((JANE, "agent"), (OPS, "analyst"), ("gone@example.com", "agent")):
        made = httpx.post(
            f"{server.url}/api/users",
            headers=server.admin,
            json={"name": name, "role": role, "password": "a long password!"},
        )
        assert made.status_code == 201, made.text
    httpx.post(f"{server.url}/api/users/gone@example.com/disable", headers=server.admin)
    yield server
    server.stop()


def sign_in(live: LiveServer, provider: FakeProvider, claims: dict[str, object],
            flaw: str | None = None) -> tuple[httpx.Client, httpx.Response]:  # fmt: skip
    provider.claims, provider.flaw = claims, flaw
    browser = httpx.Client(base_url=live.url, follow_redirects=True, timeout=30)
    answer = browser.get("/sign-in/oidc", params={"next": "/segments"})
    return browser, answer


def test_the_sign_in_page_offers_the_provider(live: LiveServer) -> None:
    page = httpx.get(f"{live.url}/sign-in")
    assert "Sign in with Fake IdP" in page.text


def test_a_user_signs_in_through_the_provider_and_is_audited(
    live: LiveServer, provider: FakeProvider
) -> None:
    browser, answer = sign_in(live, provider, {"email": JANE, "email_verified": True})
    assert answer.status_code == 200, answer.text
    assert 'url=/segments"' in answer.text  # moves on to where they were going
    assert browser.get("/lookup", follow_redirects=False).status_code == 200  # an agent
    assert browser.get("/users", follow_redirects=False).status_code == 403
    entries = httpx.get(f"{live.url}/api/audit", headers=live.admin,
                        params={"action": "sign-in"}).json()["items"]  # fmt: skip
    assert any(e["actor"] == JANE and e["outcome"] == "ok" and e["detail"]["via"] == "oidc"
               for e in entries)  # fmt: skip
    # Nothing personal and no secret in the server's log.
    assert SECRET not in live.log() and JANE not in live.log()


def test_a_role_claim_maps_to_the_users_role(live: LiveServer, provider: FakeProvider) -> None:
    browser, answer = sign_in(live, provider, {"email": OPS, "groups": ["staff", "cdp-admins"]})
    assert answer.status_code == 200, answer.text
    assert browser.get("/users", follow_redirects=False).status_code == 200
    users = httpx.get(f"{live.url}/api/users", headers=live.admin).json()
    assert {u["name"]: u["role"] for u in users}[OPS] == "admin"


@pytest.mark.parametrize(
    ("claims", "flaw", "said"),
    [
        ({"email": JANE}, "bad_signature", "signature does not verify"),
        ({"email": JANE}, "wrong_audience", "another client"),
        ({"email": JANE}, "expired", "expired"),
        ({"email": JANE}, "wrong_nonce", "nonce does not match"),
        ({"email": "stranger@example.com"}, None, "no Tessera user has this name"),
        ({"email": "gone@example.com"}, None, "disabled"),
        ({"email": JANE, "email_verified": False}, None, "not verified"),
    ],
)
def test_a_flawed_or_unknown_sign_in_is_refused_and_audited(
    live: LiveServer, provider: FakeProvider, claims: dict[str, object], flaw: str | None,
    said: str,
) -> None:  # fmt: skip
    before = _failures(live)
    browser, answer = sign_in(live, provider, claims, flaw)
    assert answer.status_code == 401, answer.text
    assert said in answer.text
    assert browser.get("/", follow_redirects=False).status_code == 303  # still signed out
    assert _failures(live) == before + 1


def test_a_callback_with_another_state_is_refused(live: LiveServer, provider: FakeProvider) -> None:
    provider.claims, provider.flaw = {"email": JANE}, None
    browser = httpx.Client(base_url=live.url, timeout=30)
    to_provider = browser.get("/sign-in/oidc")
    assert to_provider.status_code == 303
    back = httpx.get(to_provider.headers["location"])  # the provider redirects back
    location = urlsplit(back.headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    forged = browser.get(f"{location.path}?{urlencode({**query, 'state': 'forged'})}")
    assert forged.status_code == 401 and "state does not match" in forged.text
    # Without the cookie of a sign-in begun here, a genuine-looking callback is refused too.
    stranger = httpx.get(f"{live.url}{location.path}?{location.query}")
    assert stranger.status_code == 401 and "not started here" in stranger.text


def _failures(live: LiveServer) -> int:
    entries = httpx.get(f"{live.url}/api/audit", headers=live.admin,
                        params={"action": "sign-in", "limit": 1000}).json()["items"]  # fmt: skip
    return sum(1 for e in entries if e["outcome"] == "failed" and e["detail"].get("via") == "oidc")
