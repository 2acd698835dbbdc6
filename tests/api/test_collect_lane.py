"""The collect endpoints answer through their own lane (app.CollectLane), in front of
FastAPI's stack: every answer the full stack gave is still given, headers included."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer, basic_auth


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    return server.create_source("lane")


def assert_security_headers(answer: httpx.Response) -> None:
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"


def test_collect_answers_carry_the_security_headers(server: LiveServer, key: str) -> None:
    message = {"event": "Lane Tested", "userId": "u-lane", "messageId": "lane-1"}
    stored = httpx.post(
        f"{server.url}/v1/track", json=message, headers={"Authorization": basic_auth(key)}
    )
    refused = httpx.post(
        f"{server.url}/v1/b", json={"batch": []}, headers={"Authorization": basic_auth("nope")}
    )
    assert stored.status_code == 200 and stored.json() == {"success": True}
    assert refused.status_code == 401 and refused.json()["success"] is False
    for answer in (stored, refused):
        assert_security_headers(answer)


def test_preflight_on_a_collect_path_is_answered_with_cors(server: LiveServer) -> None:
    answer = httpx.options(
        f"{server.url}/v1/t",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"
    assert answer.headers["access-control-expose-headers"] == "Retry-After"
    assert_security_headers(answer)


def test_other_methods_and_paths_near_collect_keep_their_answers(server: LiveServer) -> None:
    wrong_method = httpx.get(f"{server.url}/v1/batch")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"
    assert {"POST", "OPTIONS"} <= {m.strip() for m in wrong_method.headers["allow"].split(",")}
    trailing_slash = httpx.post(f"{server.url}/v1/batch/", json={"batch": []})
    assert trailing_slash.status_code == 404
    assert trailing_slash.json()["code"] == "not_found"
    for answer in (wrong_method, trailing_slash):
        assert_security_headers(answer)
