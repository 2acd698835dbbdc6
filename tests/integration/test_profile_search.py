"""Searching profiles by a trait: any key is found and none breaks the query."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.profiles import view
from tessera.runtime import Runtime
from tests.integration.helpers import send

KEYS = {"a\\": "x", 'a"b': "quote", "a/b": "slash", "a~b": "tilde", "a.b": "dot",
        "$.x": "dollar", "city": "Paris"}  # fmt: skip


@pytest.fixture
def odd(runtime: Runtime) -> Runtime:
    send(runtime, [{"type": "identify", "userId": "odd", "messageId": "1", "traits": KEYS}])
    runtime.pipeline.process()
    return runtime


@pytest.mark.parametrize(("key", "value"), sorted(KEYS.items()))  # "a\\" + "x": the a\=x
def test_trait_search_finds_any_key(odd: Runtime, key: str, value: str) -> None:
    found = view.search(odd.store, trait=f"{key}={value}")
    assert [card["profile_id"] for card in found.items] != []


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1).filter(lambda key: key.strip() and "=" not in key), st.text())
def test_trait_search_never_fails_on_an_odd_key(odd: Runtime, key: str, value: str) -> None:
    assert view.search(odd.store, trait=f"{key}={value}").items == [] or key.strip() in KEYS
