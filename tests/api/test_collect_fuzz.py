"""Hypothesis over /v1/* bodies through a real server: random JSON shapes, deep nesting,
odd types, odd unicode, integers past 64 bits and gzip never get a 5xx, good neighbours in
a batch are always stored, and the server log holds no traceback."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer, basic_auth, start_server


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Any unicode a JSON string may carry (surrogates cannot be written as UTF-8).
odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
huge_ints = st.integers(min_value=-(10**40), max_value=10**40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    huge_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(odd_text, inner, max_size=3)
    ),
    max_leaves=12,
)
fields = st.sampled_from(
    ["type", "userId", "anonymousId", "event", "messageId", "timestamp", "originalTimestamp",
     "sentAt", "traits", "properties", "context", "previousId", "groupId", "name"]
)  # fmt: skip


@st.composite
def deep_values(draw: st.DrawFn) -> bytes:
    """JSON text nested up to 1,100 levels: past what orjson writes (254) and reads (1,024)."""
    levels = draw(st.integers(min_value=1, max_value=1100))
    opener = draw(st.sampled_from([b'{"k":', b"["]))
    closer = b"}" if opener.startswith(b"{") else b"]"
    return opener * levels + b"1" + closer * levels


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """One message as JSON text: random fields, sometimes one nested very deep."""
    message = draw(st.dictionaries(fields, values, max_size=7))
    text = json.dumps(message).encode()  # the standard library writes integers of any size
    if draw(st.booleans()):
        deep = draw(deep_values())
        text = b'{"properties": ' + deep + b", " + text[1:] if message else b'{"p": ' + deep + b"}"
    return text


def good_message() -> tuple[str, bytes]:
    message_id = f"good-{uuid.uuid4()}"
    return message_id, orjson.dumps(
        {"type": "track", "event": "Good", "userId": "u-good", "messageId": message_id}
    )


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of its own, whose log must hold no traceback when the fuzzing is over."""
    live = start_server(Path(tmp_path_factory.mktemp("fuzz")) / "data")
    yield live
    live.stop()
    assert "Traceback" not in live.log(), live.log()


@pytest.fixture(scope="module")
def fuzz_key(fuzzed: LiveServer) -> str:
    return fuzzed.create_source("collect-fuzz", "server")


def send(server: LiveServer, key: str, path: str, body: bytes, zipped: bool) -> httpx.Response:
    headers = {"Authorization": basic_auth(key), "Content-Type": "application/json"}
    if zipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)


def newest_message_id(server: LiveServer) -> str:
    newest = httpx.get(f"{server.url}/api/events?limit=1", headers=server.admin).json()
    return str(newest["items"][0]["message_id"])


@fuzz(60)
@given(
    body=st.one_of(
        st.binary(max_size=100), messages(), values.map(lambda v: json.dumps(v).encode())
    ),
    path=st.sampled_from(["/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/a", "/v1/g"]),
    zipped=st.booleans(),
)
def test_any_body_gets_an_answer_below_500(
    fuzzed: LiveServer, fuzz_key: str, body: bytes, path: str, zipped: bool
) -> None:
    response = send(fuzzed, fuzz_key, path, body, zipped)
    assert response.status_code < 500, response.text
    answer: dict[str, Any] = response.json()
    assert answer["success"] is (response.status_code == 200)
    if response.status_code != 200:
        assert answer["code"] and answer["message"]


@fuzz(30)
@given(
    others=st.lists(messages(), max_size=4),
    sent_at=st.one_of(
        st.none(), st.sampled_from(["2024-05-01T12:00:00Z", "1970-01-01T00:00:01Z"]), values
    ),
    zipped=st.booleans(),
)
def test_good_neighbours_in_a_batch_are_always_stored(
    fuzzed: LiveServer,
    fuzz_key: str,
    others: list[bytes],
    sent_at: Any,
    zipped: bool,
) -> None:
    server = fuzzed
    message_id, good = good_message()
    # The good message last: it then has the highest sequence number of the request.
    batch = b"[" + b", ".join([*others, good]) + b"]"
    body = b'{"batch": ' + batch
    body += b', "sentAt": %s}' % json.dumps(sent_at).encode() if sent_at is not None else b"}"
    response = send(server, fuzz_key, "/v1/batch", body, zipped)
    assert response.status_code == 200, response.text
    assert newest_message_id(server) == message_id


@fuzz(15)
@given(number=huge_ints, field=st.sampled_from(["userId", "anonymousId"]))
def test_numeric_ids_of_any_size_keep_every_digit(
    fuzzed: LiveServer, fuzz_key: str, number: int, field: str
) -> None:
    server = fuzzed
    message_id = f"n-{uuid.uuid4()}"
    body = b'{"%s": %d, "event": "e", "messageId": "%s"}' % (
        field.encode(),
        number,
        message_id.encode(),
    )
    assert send(server, fuzz_key, "/v1/track", body, False).status_code == 200
    newest = httpx.get(f"{server.url}/api/events?limit=1", headers=server.admin).json()["items"][0]
    column = "user_id" if field == "userId" else "anonymous_id"
    assert (newest["message_id"], newest[column]) == (message_id, str(number))
