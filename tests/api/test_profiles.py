"""Unify over HTTP, on a real server whose pipeline runs in the background."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from tests.conftest import LiveServer, basic_auth

MESSAGES = [
    {"type": "page", "anonymousId": "web-cookie", "messageId": "p1"},
    {"type": "identify", "anonymousId": "web-cookie", "userId": "jane", "messageId": "p2",
     "traits": {"email": "Jane.Doe@Example.com", "firstName": "Jane"}},
    {"type": "track", "userId": "jane", "event": "Order Completed", "messageId": "p3",
     "properties": {"revenue": 42.5}},
    {"type": "track", "anonymousId": "app-install", "event": "Application Opened",
     "messageId": "p4", "context": {"traits": {"email": "jane.doe@example.com"},
                                    "consent": {"categoryPreferences": {"advertising": False}}}},
]  # fmt: skip


def get(server: LiveServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=server.admin, params=params, timeout=60)


def wait_for_pipeline(server: LiveServer, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: dict[str, Any] = get(server, "/api/pipeline").json()
        if state["lag_events"] == 0:
            return state
        time.sleep(0.1)
    raise AssertionError(f"pipeline still behind: {state}")


@pytest.fixture(scope="module")
def jane(server: LiveServer) -> None:
    key = server.create_source("unify-web", "web")
    response = httpx.post(
        f"{server.url}/v1/batch",
        content=orjson.dumps({"batch": MESSAGES}),
        headers={"Authorization": basic_auth(key)},
    )
    assert response.status_code == 200
    wait_for_pipeline(server)


def test_stats_report_the_pipeline_lag(server: LiveServer, jane: None) -> None:
    stats = server.stats()
    assert stats["lag_events"] == 0 and "lag_seconds" in stats


def test_360_view_by_any_identifier_normalised(server: LiveServer, jane: None) -> None:
    # The loop's refresh may land between two reads (the lag is 0 before it runs: best
    # channel and time appear then): the other identifier's view is read between two
    # equal ones.
    for _ in range(100):
        by_email = get(server, f"/api/profiles/{quote('email: JANE.DOE@example.com ')}")
        assert by_email.status_code == 200, by_email.text
        profile = by_email.json()
        other = get(server, "/api/profiles/anonymous_id:app-install").json()
        if get(server, f"/api/profiles/{quote('email:jane.doe@example.com')}").json() == profile:
            break
        time.sleep(0.2)
    assert profile == other
    assert {(i["type"], i["value"]) for i in profile["identifiers"]} == {
        ("anonymous_id", "web-cookie"),
        ("anonymous_id", "app-install"),
        ("user_id", "jane"),
        ("email", "jane.doe@example.com"),
    }
    assert profile["traits"]["firstName"] == "Jane"
    assert profile["consent"] == {"advertising": False}
    assert profile["computed_traits"]["total_revenue"] == 42.5
    assert profile["event_count"] == 4 and len(profile["events"]["items"]) == 4
    assert (
        get(server, f"/api/profiles/{profile['profile_id']}").json()["profile_id"]
        == profile["profile_id"]
    )


def test_timeline_pages(server: LiveServer, jane: None) -> None:
    first = get(server, "/api/profiles/user_id:jane/events", limit=3).json()
    assert len(first["items"]) == 3 and first["next_before_seq"]
    rest = get(
        server, "/api/profiles/user_id:jane/events", limit=3, before_seq=first["next_before_seq"]
    ).json()
    assert len(rest["items"]) == 1 and rest["next_before_seq"] is None


def test_unknown_and_malformed_references(server: LiveServer, jane: None) -> None:
    missing = get(server, "/api/profiles/email:nobody@example.com")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    malformed = get(server, "/api/profiles/jane")
    assert malformed.status_code == 400 and "TYPE:VALUE" in malformed.json()["message"]
    bad_phone = get(server, "/api/profiles/phone:12")
    assert bad_phone.status_code == 400 and "not a valid phone" in bad_phone.json()["message"]


def test_search(server: LiveServer, jane: None) -> None:
    found = get(server, "/api/profiles", identifier="jane.doe").json()["items"]
    assert found[0]["email"] == "jane.doe@example.com"  # the newest value wins
    by_trait = get(server, "/api/profiles", trait="firstName=jane").json()["items"]
    assert by_trait[0]["name"] == "Jane"


def test_explain_then_unmerge(server: LiveServer, jane: None) -> None:
    answer = get(
        server,
        "/api/identity/explain",
        first="anonymous_id:web-cookie",
        second="anonymous_id:app-install",
    ).json()
    assert answer["same_profile"] and answer["chain"][-1]["to"] == "anonymous_id:app-install"
    response = httpx.post(
        f"{server.url}/api/identity/unmerge",
        headers=server.admin,
        timeout=60,
        json={
            "first": "email:jane.doe@example.com",
            "second": "anonymous_id:app-install",
            "reason": "test",
        },
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["first_profile"] != result["second_profile"]
    blocks = get(server, "/api/identity/blocks").json()
    assert blocks[0]["first"] == "email:jane.doe@example.com"


def test_computed_traits_over_http(server: LiveServer, jane: None) -> None:
    created = httpx.post(
        f"{server.url}/api/computed-traits",
        headers=server.admin,
        json={"name": "app_opens", "function": "count", "event": "Application Opened"},
    )
    assert created.status_code == 201, created.text
    names = [t["name"] for t in get(server, "/api/computed-traits").json()]
    assert "app_opens" in names and "order_count" in names
    refused = httpx.post(
        f"{server.url}/api/computed-traits",
        headers=server.admin,
        json={"name": "x", "function": "median"},
    )
    assert refused.status_code == 400 and "'median'" in refused.json()["message"]
    gone = httpx.delete(f"{server.url}/api/computed-traits/app_opens", headers=server.admin)
    assert gone.status_code == 200


def test_as_of_over_http(server: LiveServer, jane: None) -> None:
    past = get(server, "/api/profiles/user_id:jane", as_of="2000-01-01")
    assert past.status_code == 404
    now = get(server, "/api/profiles/user_id:jane", as_of="2999-01-01")
    assert now.status_code == 200 and now.json()["traits"]["firstName"] == "Jane"


def test_definition_bodies_are_typed_in_openapi(server: LiveServer) -> None:
    # Both bodies were `dict[str, Any]`: OpenAPI showed an object with no fields.
    spec = httpx.get(f"{server.url}/openapi.json").json()

    def fields_of(path: str, method: str) -> set[str]:
        body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
        reference = body["schema"]["$ref"].rsplit("/", 1)[-1]
        return set(spec["components"]["schemas"][reference]["properties"])

    assert fields_of("/api/computed-traits", "post") == {
        "name", "function", "event", "property", "where", "window_days", "by", "category_level",
    }  # fmt: skip
    assert fields_of("/api/audiences/signals", "put") == {"taxonomy", "categories", "signals"}
    signal = spec["components"]["schemas"]["SignalDefinition"]["properties"]
    assert set(signal) == {"name", "when", "value", "lifetime_days"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "x", "function": "median"}, "function", "function 'median' must be one of"),
        ({"name": "Bad Name", "function": "count"}, "name", "must be lower_snake_case"),
        ({"name": "x", "function": "count", "colour": 1}, "colour", "unknown key(s) colour"),
        ({"name": "x", "function": "sum"}, "property", "needs `property:`"),
        (
            {"name": "x", "function": "count", "window_days": 0},
            "window_days",
            "whole number of days from 1",
        ),
        ([1, 2], "trait", "a computed trait is a mapping"),
    ],
)
def test_typed_trait_body_keeps_the_field_and_wording_of_its_errors(
    server: LiveServer, body: object, field: str, words: str
) -> None:
    refused = httpx.post(f"{server.url}/api/computed-traits", headers=server.admin, json=body)
    answer = refused.json()
    assert (refused.status_code, answer["code"], answer["field"]) == (400, "invalid_field", field)
    assert words in answer["message"]


def test_typed_signals_body_keeps_the_field_and_wording_of_its_errors(server: LiveServer) -> None:
    refused = httpx.put(
        f"{server.url}/api/audiences/signals",
        headers=server.admin,
        json={"signals": [{"name": "x", "when": {"device_type": "watch"}}]},
    )
    answer = refused.json()
    assert (refused.status_code, answer["code"]) == (400, "invalid_field")
    assert answer["field"] == "when.device_type" and "'watch' must be one of" in answer["message"]
    unknown = httpx.put(
        f"{server.url}/api/audiences/signals", headers=server.admin, json={"signal": []}
    )
    assert unknown.status_code == 400 and "unknown key(s) signal" in unknown.json()["message"]
