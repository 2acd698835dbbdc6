"""Roles, tokens, consent and the audit log through a real `tessera serve`.

The table-driven test enumerates the app's routes (every admin API route and console
page), so a route added tomorrow is tried with every role without editing this file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tessera.app import create_app
from tessera.dependencies import authorize_api
from tessera.privacy import roles
from tessera.settings import Settings
from tessera.web.session import require_session
from tests.api.test_cli import as_json, tessera
from tests.conftest import LiveServer, basic_auth, start_server

pytestmark = pytest.mark.slow

JANE = "jane.doe@example.com"
PASSWORD = "correct horse battery"
ROLES = ("admin", "marketer", "analyst", "agent")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # One process: collectors change nothing of access, and start slowly on a busy machine.
    server = start_server(tmp_path_factory.mktemp("access") / "data", TESSERA_COLLECTORS="0")
    key = server.create_source("shop", "web")
    people = [
        {
            "type": "identify",
            "userId": "u-jane",
            "messageId": "m-jane",
            "traits": {"email": JANE, "phone": "+447700900123", "city": "Leeds"},
        },
        {
            "type": "identify",
            "userId": "u-bob",
            "messageId": "m-bob",
            "traits": {"email": "bob@example.com"},
            "context": {"consent": {"categoryPreferences": {"advertising": True}}},
        },
    ]
    sent = httpx.post(f"{server.url}/v1/batch", json={"batch": people},
                      headers={"Authorization": basic_auth(key)})  # fmt: skip
    assert sent.status_code == 200, sent.text
    server.caught_up()
    for role in ROLES:
        made = httpx.post(
            f"{server.url}/api/users",
            headers=server.admin,
            json={"name": f"{role}-1", "role": role, "password": PASSWORD},
        )
        assert made.status_code == 201, made.text
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bearers(live: LiveServer) -> dict[str, dict[str, str]]:
    found = {}
    for role in ROLES:
        made = httpx.post(
            f"{live.url}/api/tokens",
            headers=live.admin,
            json={"user": f"{role}-1", "scopes": ["*"], "expires": "1d"},
        )
        assert made.status_code == 201, made.text
        found[role] = {"Authorization": f"Bearer {made.json()['token']}"}
    return found


@pytest.fixture(scope="module")
def sessions(live: LiveServer) -> dict[str, httpx.Cookies]:
    found = {}
    for role in ROLES:
        signed = httpx.post(f"{live.url}/sign-in", data={"name": f"{role}-1", "token": PASSWORD})
        assert signed.status_code == 303, signed.text
        found[role] = signed.cookies
    return found


def _protected_routes() -> list[tuple[str, str, str]]:
    """(method, path template, edge) of every route behind a role check."""
    app = create_app(Settings(data_dir=Path("/nonexistent"), admin_token="x" * 30))
    found = []
    # FastAPI keeps an included router whole (`original_router`), its dependencies on it.
    for included in app.routes:
        router = getattr(included, "original_router", None)
        if router is None:
            continue
        calls = {d.dependency for d in router.dependencies}
        edge = "api" if authorize_api in calls else "console" if require_session in calls else ""
        for route in router.routes:
            if not edge or not isinstance(route, APIRoute):
                continue
            for method in sorted(route.methods - {"HEAD"}):
                found.append((method, route.path, edge))
    return found


ROUTES = _protected_routes()


def _path(template: str) -> str:
    return re.sub(r"\{reference:path\}", f"email:{JANE}",
                  re.sub(r"\{(?!reference)[^}]+\}", "no-such-thing", template))  # fmt: skip


def test_every_protected_route_is_in_an_area_of_the_role_table() -> None:
    assert len(ROUTES) > 60
    assert [t for _, t, _ in ROUTES if roles.area_of(t) not in roles.AREAS] == []
    # A route no pattern names would fall to admin-only without anyone deciding it: each
    # new route family is named in the table (and so given to the roles whose job it is).
    assert sorted({t for _, t, _ in ROUTES if roles.named_area(t) is None}) == []


@pytest.mark.parametrize("role", ROLES)
def test_role_by_route_is_allowed_denied_or_masked_as_the_table_says(
    live: LiveServer,
    role: str,
    bearers: dict[str, dict[str, str]],
    sessions: dict[str, httpx.Cookies],
) -> None:
    wrong = []
    with httpx.Client(base_url=live.url, timeout=60) as client:
        for method, template, edge in ROUTES:
            if method != "GET" and ("rebuild" in template or "replay" in template):
                continue  # allowed, they would rebuild the store each time
            options: dict[str, Any] = (
                {"headers": bearers[role]} if edge == "api" else {"cookies": sessions[role]}
            )
            answer = client.request(method, _path(template), **options)
            allowed = roles.allowed(role, method, template)
            if not allowed and template == "/" and role == "agent":
                ok = answer.status_code == 303 and answer.headers["location"] == "/lookup"
            elif allowed:
                ok = answer.status_code not in (401, 403)
            else:
                ok = answer.status_code == 403
            if ok and allowed and answer.status_code == 200 and role in ("marketer", "analyst"):
                ok = JANE not in answer.text and "+447700900123" not in answer.text
            if not ok:
                wrong.append((method, template, answer.status_code, allowed))
    assert wrong == []


def test_profile_is_masked_for_marketers_and_whole_for_agents(
    live: LiveServer, bearers: dict[str, dict[str, str]], sessions: dict[str, httpx.Cookies]
) -> None:
    path = f"/api/profiles/email:{JANE}"
    masked = httpx.get(live.url + path, headers=bearers["marketer"])
    assert masked.status_code == 200 and JANE not in masked.text
    assert "j•••@example.com" in masked.text
    whole = httpx.get(live.url + path, headers=bearers["agent"])
    assert JANE in whole.text
    page = httpx.get(f"{live.url}/profiles/email:{JANE}", cookies=sessions["analyst"])
    assert page.status_code == 200 and JANE not in page.text
    assert httpx.get(f"{live.url}/api/profiles", headers=bearers["agent"]).status_code == 403


def test_a_read_scoped_token_cannot_write_and_a_disabled_user_is_out(live: LiveServer) -> None:
    made = httpx.post(
        f"{live.url}/api/users",
        headers=live.admin,
        json={"name": "temp-1", "role": "marketer", "password": PASSWORD},
    )
    assert made.status_code == 201
    token = httpx.post(
        f"{live.url}/api/tokens",
        headers=live.admin,
        json={"user": "temp-1", "scopes": ["segments:read"]},
    ).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{live.url}/api/segments", headers=bearer).status_code == 200
    created = httpx.post(
        f"{live.url}/api/segments", headers=bearer, json={"name": "t", "query": "has email"}
    )
    assert created.status_code == 403
    assert httpx.get(f"{live.url}/api/destinations", headers=bearer).status_code == 403
    httpx.post(f"{live.url}/api/users/temp-1/disable", headers=live.admin)
    assert httpx.get(f"{live.url}/api/segments", headers=bearer).status_code == 401


def test_agent_refusal_stops_an_export_and_everything_is_audited(
    live: LiveServer, bearers: dict[str, dict[str, str]]
) -> None:
    made = httpx.post(
        f"{live.url}/api/segments",
        headers=live.admin,
        json={"name": "with-email", "query": "has email"},
    )
    assert made.status_code in (200, 201), made.text
    consent = f"{live.url}/api/profiles/email:{JANE}/consent"
    granted = httpx.post(
        consent,
        headers=bearers["agent"],
        json={"purposes": {"advertising": True}, "reason": "asked on the phone"},
    )
    assert granted.status_code == 200, granted.text
    live.caught_up()
    before = _export(live)
    refused = httpx.post(
        consent,
        headers=bearers["agent"],
        json={"purposes": {"advertising": False}, "reason": "changed her mind"},
    )
    assert refused.status_code == 200, refused.text
    live.caught_up()
    after = _export(live)
    assert before["refused_consent"] + 1 == after["refused_consent"]
    state = httpx.get(consent, headers=live.admin).json()
    assert state["allowed"]["advertising"] is False
    agent_rows = [r for r in state["history"] if r["via"] == "agent"]
    assert [r["reason"] for r in agent_rows] == ["asked on the phone", "changed her mind"]
    assert {r["actor"] for r in agent_rows} == {"agent-1"}
    assert httpx.get(f"{live.url}/api/profiles/email:{JANE}", headers=bearers["agent"]).is_success
    assert httpx.get(f"{live.url}/api/profiles", headers=bearers["agent"]).status_code == 403
    httpx.post(f"{live.url}/sign-in", data={"name": "agent-1", "token": "wrong password!"})
    log = httpx.get(f"{live.url}/api/audit", headers=live.admin, params={"limit": 1000}).json()
    actions = {(e["actor"], e["action"]) for e in log["items"]}
    assert ("agent-1", "profile.view") in actions
    assert ("agent-1", "POST /api/profiles/{reference:path}/consent") in actions
    assert ("admin-token", "export") in actions
    assert ("agent-1", "sign-in") in actions
    assert any(e["action"] == "sign-in" and e["outcome"] == "failed" for e in log["items"])
    assert any(e["outcome"] == "denied" for e in log["items"])
    verified = httpx.get(f"{live.url}/api/audit/verify", headers=live.admin).json()
    assert verified["intact"] is True


def _export(live: LiveServer) -> dict[str, Any]:
    answer = httpx.get(f"{live.url}/api/audiences/with-email/export", headers=live.admin,
                       params={"format": "google"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = json.loads(answer.headers["x-tessera-export"])
    return result


def test_the_cli_manages_users_tokens_consent_and_the_audit_log(live: LiveServer) -> None:
    data = live.data_dir
    made = as_json(tessera(data, "users", "create", "cli-agent", "--role", "agent",
                           "--password", PASSWORD, "--json"))  # fmt: skip
    assert made["role"] == "agent" and made["enabled"] is True
    # Each call starts a Python process: the other commands' models are checked in
    # tests/integration/test_backend_round_trip.py without one.
    token = as_json(tessera(data, "tokens", "create", "--user", "cli-agent", "--scope",
                            "segments:read", "--expires", "2h", "--json"))  # fmt: skip
    assert token["token"].startswith("tpt_") and token["details"]["scopes"] == ["segments:read"]
    changed = as_json(tessera(data, "consent", "set", "user_id:u-bob", "--refuse", "email",
                              "--reason", "unsubscribed by letter", "--json"))  # fmt: skip
    assert changed["purposes"] == {"email": False}
    live.caught_up()
    shown = as_json(tessera(data, "consent", "show", "user_id:u-bob", "--json"))
    assert shown["purposes"]["email"] is False and shown["purposes"]["advertising"] is True
    page = as_json(tessera(data, "audit", "--action", "POST /api/users", "--json"))
    assert page["total"] >= 1
    assert as_json(tessera(data, "audit", "--verify", "--json"))["intact"] is True
    exported = tessera(data, "audit", "--export", str(data.parent / "audit.jsonl"))
    assert "entries" in exported.stdout
    lines = (data.parent / "audit.jsonl").read_text().splitlines()
    assert len(lines) >= page["total"] and all(json.loads(line)["hash"] for line in lines)
