"""The collect API against a real server: the Segment wire format, errors, CORS."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import LiveServer, basic_auth


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    return server.create_source("web-shop", "web")


def post(
    server: LiveServer,
    path: str,
    body: Any,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key:
        all_headers["Authorization"] = basic_auth(key)
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{server.url}{path}", content=content, headers=all_headers)


def tail(server: LiveServer, limit: int = 5) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = httpx.get(
        f"{server.url}/api/events?limit={limit}", headers=server.admin
    ).json()["items"]
    return result


def newest_rejected(server: LiveServer, limit: int = 1) -> list[dict[str, Any]]:
    page = httpx.get(f"{server.url}/api/events/rejected?limit={limit}", headers=server.admin)
    result: list[dict[str, Any]] = page.json()["items"]
    return result


def mid() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize("path", ["/v1/track", "/v1/t"])
def test_track_answers_exactly_200_success(server: LiveServer, key: str, path: str) -> None:
    message_id = mid()
    response = post(
        server, path, {"userId": "u1", "event": "Signed Up", "messageId": message_id}, key
    )
    assert response.status_code == 200
    assert response.content == b'{"success":true}'
    assert tail(server, 1)[0]["message_id"] == message_id


@pytest.mark.parametrize(("path", "kind", "extra"), [
    ("/v1/identify", "identify", {"traits": {"email": "a@b.co"}}),
    ("/v1/i", "identify", {}),
    ("/v1/page", "page", {"name": "Home"}),
    ("/v1/p", "page", {}),
    ("/v1/screen", "screen", {"name": "Cart"}),
    ("/v1/s", "screen", {}),
    ("/v1/group", "group", {"groupId": "g1"}),
    ("/v1/g", "group", {"groupId": "g1"}),
    ("/v1/alias", "alias", {"previousId": "anon-1"}),
    ("/v1/a", "alias", {"previousId": "anon-1"}),
])  # fmt: skip
def test_every_single_message_endpoint(
    server: LiveServer, key: str, path: str, kind: str, extra: dict[str, Any]
) -> None:
    message_id = mid()
    response = post(server, path, {"userId": "u1", "messageId": message_id, **extra}, key)
    assert response.status_code == 200, response.text
    newest = tail(server, 1)[0]
    assert (newest["message_id"], newest["type"]) == (message_id, kind)


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b"])
def test_batch_with_write_key_in_body_and_text_plain(
    server: LiveServer, path: str, key: str
) -> None:
    ids = [mid(), mid()]
    body = {
        "writeKey": key,
        "sentAt": "2024-01-01T00:00:00Z",
        "batch": [
            {
                "type": "track",
                "event": "A",
                "anonymousId": "x",
                "messageId": ids[0],
                "originalTimestamp": "2024-01-01T00:00:00Z",
            },
            {"type": "page", "anonymousId": "x", "messageId": ids[1]},
        ],
    }
    response = post(server, path, body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    assert {e["message_id"] for e in tail(server, 2)} == set(ids)


def test_form_urlencoded_label_is_still_parsed_as_json(server: LiveServer, key: str) -> None:
    response = post(
        server,
        "/v1/batch",
        {"batch": [{"type": "identify", "userId": "f"}]},
        key,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200


def test_gzip_body(server: LiveServer, key: str) -> None:
    message_id = mid()
    body = gzip.compress(
        orjson.dumps({"batch": [{"type": "identify", "userId": "g", "messageId": message_id}]})
    )
    response = post(server, "/v1/batch", body, key, {"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert tail(server, 1)[0]["message_id"] == message_id


def test_retried_batch_creates_no_duplicates(server: LiveServer, key: str) -> None:
    batch = {
        "batch": [
            {"type": "track", "event": "R", "userId": "r", "messageId": mid()} for _ in range(20)
        ]
    }
    before = server.stats()["events"]
    for _ in range(3):
        assert post(server, "/v1/batch", batch, key).status_code == 200
    assert server.stats()["events"] == before + 20  # type: ignore[operator]


def test_one_bad_message_does_not_sink_the_batch(server: LiveServer, key: str) -> None:
    good = mid()
    bad = mid()
    response = post(
        server,
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "event": "Good", "userId": "u", "messageId": good},
                {"type": "track", "userId": "u", "messageId": bad},
            ]
        },
        key,
    )
    assert response.status_code == 200
    assert tail(server, 1)[0]["message_id"] == good
    rejected = newest_rejected(server)
    assert rejected[0]["message_id"] == bad
    assert rejected[0]["code"] == "missing_field"
    assert orjson.loads(rejected[0]["payload"])["messageId"] == bad


@pytest.mark.parametrize(("path", "body", "headers", "status", "code", "words"), [
    ("/v1/track", {"event": "x"}, {}, 400, "missing_identity", "userId or an anonymousId"),
    ("/v1/track", {"userId": "u"}, {}, 400, "missing_field", "event is missing"),
    ("/v1/identify", {"userId": "u", "timestamp": "31/12/2024"}, {}, 400, "invalid_timestamp",
     "'31/12/2024'"),
    ("/v1/batch", {"batch": "nope"}, {}, 400, "invalid_field", "'batch' is a str"),
    ("/v1/batch", b"{not json", {}, 400, "invalid_json", "not valid JSON"),
    ("/v1/batch", b"\x1f\x8b\x08garbage", {"Content-Encoding": "gzip"}, 400, "invalid_gzip",
     "does not inflate"),
    ("/v1/batch", b"[1, 2]", {}, 400, "invalid_field", "JSON object"),
    ("/v1/identify", {"userId": "u", "traits": {"bio": "x" * 40_000}}, {}, 400,
     "message_too_large", "limit is 32768"),
])  # fmt: skip
def test_bad_input_gets_a_clear_4xx(
    server: LiveServer,
    key: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
    words: str,
) -> None:
    before = server.stats()["events"]
    response = post(server, path, body, key, headers)
    assert response.status_code == status
    payload = response.json()
    assert payload["success"] is False
    assert payload["code"] == code
    assert words in payload["message"]
    assert server.stats()["events"] == before


def test_unknown_type_in_a_batch_is_dead_lettered(server: LiveServer, key: str) -> None:
    response = post(server, "/v1/batch", {"batch": [{"type": "purchase", "userId": "u"}]}, key)
    assert response.status_code == 200
    rejected = newest_rejected(server)
    assert rejected[0]["code"] == "unknown_type"


def test_auth_errors(server: LiveServer) -> None:
    missing = post(server, "/v1/track", {"userId": "u", "event": "e"})
    assert (missing.status_code, missing.json()["code"]) == (401, "missing_write_key")
    wrong = post(server, "/v1/track", {"userId": "u", "event": "e"}, "tsk_wrong")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_write_key")


def test_a_key_only_writes_into_its_own_source(server: LiveServer) -> None:
    mobile_key = server.create_source("app", "mobile")
    assert post(server, "/v1/track", {"userId": "u", "event": "e"}, mobile_key).status_code == 200
    newest = tail(server, 1)[0]
    assert newest["channel"] == "mobile"


def test_disabled_source_is_refused(server: LiveServer) -> None:
    shop_key = server.create_source("till", "pos")
    httpx.post(f"{server.url}/api/sources/till/disable", headers=server.admin)
    response = post(server, "/v1/track", {"userId": "u", "event": "e"}, shop_key)
    assert (response.status_code, response.json()["code"]) == (403, "source_disabled")


def test_body_over_the_limit_is_413(server: LiveServer, key: str) -> None:
    response = post(server, "/v1/batch", b" " * (4 * 1024 * 1024 + 1), key)
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")


def test_cors_preflight_and_headers(server: LiveServer, key: str) -> None:
    origin = {"Origin": "https://shop.example"}
    preflight = httpx.options(
        f"{server.url}/v1/t",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-expose-headers"] == "Retry-After"
    response = post(server, "/v1/t", {"anonymousId": "a", "event": "e"}, key, origin)
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    refused = post(server, "/v1/t", {"event": "e"}, key, origin)
    assert refused.headers["access-control-allow-origin"] == "https://shop.example"


def nested(levels: int) -> bytes:
    """JSON text of `levels` objects one inside the other (orjson cannot write it)."""
    return b'{"k":' * levels + b'"leaf"' + b"}" * levels


def rejected_latest(server: LiveServer) -> dict[str, Any]:
    return newest_rejected(server)[0]


@pytest.mark.parametrize("levels", [300, 1000])
def test_deeply_nested_message_is_dead_lettered_and_its_neighbours_stored(
    server: LiveServer, key: str, levels: int
) -> None:
    # Was 503 store_unavailable for the whole batch, which SDKs retry for ever.
    good, deep = mid(), mid()
    good_message = orjson.dumps(
        {"type": "track", "event": "Good", "userId": "u", "messageId": good}
    )
    deep_message = (
        b'{"type": "track", "event": "Deep", "userId": "u", "messageId": "%s", "properties": %s}'
        % (deep.encode(), nested(levels))
    )
    response = post(server, "/v1/batch", b'{"batch": [%s, %s]}' % (good_message, deep_message), key)
    assert response.status_code == 200, response.text
    assert tail(server, 1)[0]["message_id"] == good
    letter = rejected_latest(server)
    assert (letter["message_id"], letter["code"]) == (deep, "message_too_deep")
    assert "nested deeper than 64 levels" in letter["payload"]
    single = post(server, "/v1/track", deep_message, key)
    assert single.status_code == 400
    assert single.json()["code"] == "message_too_deep"
    assert "more than 64 levels deep" in single.json()["message"]


def test_huge_numeric_user_id_is_stored_with_every_digit(server: LiveServer, key: str) -> None:
    message_id = mid()
    body = (
        b'{"userId": 123456789012345678901234567890, "event": "e", "messageId": "'
        + message_id.encode()
        + b'"}'
    )
    assert post(server, "/v1/track", body, key).status_code == 200
    newest = tail(server, 1)[0]
    assert newest["message_id"] == message_id
    assert newest["user_id"] == "123456789012345678901234567890"


def test_clock_skew_correction_stays_in_the_calendar(server: LiveServer, key: str) -> None:
    # Was stored as 2156-11-29.
    message_id = mid()
    body = {"userId": "u", "event": "e", "messageId": message_id,
            "timestamp": "2099-12-31T00:00:00Z", "sentAt": "1970-01-01T00:00:01Z"}  # fmt: skip
    assert post(server, "/v1/track", body, key).status_code == 200
    newest = tail(server, 1)[0]
    assert newest["message_id"] == message_id
    assert newest["timestamp"] == newest["received_at"]
    assert "2099-12-31T00:00:00Z" in newest["notes"]["timestampAdjusted"]


def test_blank_message_id_is_a_400_saying_it_is_blank(server: LiveServer, key: str) -> None:
    response = post(server, "/v1/track", {"userId": "u", "event": "e", "messageId": "  "}, key)
    assert response.status_code == 400
    assert response.json()["field"] == "messageId"
    assert "blank" in response.json()["message"]


def test_unreadable_batch_sent_at_is_ignored_not_fatal(server: LiveServer, key: str) -> None:
    # Was a 400 for the whole batch: sentAt only serves the clock-skew correction.
    message_id = mid()
    batch = {"batch": [{"type": "track", "event": "e", "userId": "u", "messageId": message_id,
                        "timestamp": "2024-05-01T12:00:00Z"}], "sentAt": "yesterday"}  # fmt: skip
    assert post(server, "/v1/batch", batch, key).status_code == 200
    newest = tail(server, 1)[0]
    assert newest["message_id"] == message_id
    assert newest["timestamp"] == "2024-05-01T12:00:00Z"
    assert "'yesterday'" in newest["notes"]["sentAtIgnored"]
