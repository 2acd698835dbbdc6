"""Random bodies thrown at the collect API never produce a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer, basic_auth

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "type",
        "userId",
        "anonymousId",
        "event",
        "messageId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "traits",
        "properties",
        "context",
        "previousId",
        "groupId",
        "name",
    ]
)
messages = st.dictionaries(field_names, json_values, max_size=8)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    st.builds(
        lambda batch, sent: orjson.dumps({"batch": batch, "sentAt": sent}),
        st.lists(st.one_of(messages, json_values), max_size=5),
        json_values,
    ),
    messages.map(orjson.dumps),
)


@pytest.fixture(scope="module")
def fuzz_key(server: LiveServer) -> str:
    return server.create_source("fuzz", "server")


@given(body=bodies, path=st.sampled_from(["/v1/batch", "/v1/track", "/v1/identify", "/v1/a"]))
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_random_bodies_never_get_a_5xx(
    server: LiveServer, fuzz_key: str, body: bytes, path: str
) -> None:
    response = httpx.post(
        f"{server.url}{path}", content=body, headers={"Authorization": basic_auth(fuzz_key)}
    )
    assert response.status_code < 500, response.text
    payload: dict[str, Any] = response.json()
    assert payload["success"] is (response.status_code == 200)
    if response.status_code != 200:
        assert payload["code"] and payload["message"]
