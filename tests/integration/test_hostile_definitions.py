"""Computed-trait and signal definitions with hostile values (found by the fuzz layer): a
clear 400 naming the field, or a trait that computes; never a definition that is saved and
then breaks every refresh."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tessera.audiences import signals
from tessera.errors import InvalidField
from tessera.identity.lookup import lookup
from tessera.profiles import catalogue, view
from tessera.runtime import Runtime
from tests.integration.helpers import send


def test_property_and_where_keys_with_backslashes_and_quotes_compute(runtime: Runtime) -> None:
    """A guard: the trait's JSON paths escape what profiles/view.py's did not (issue 10 B)."""
    send(runtime, [
        {"type": "track", "userId": "u1", "event": "Paid", "messageId": f"m{n}",
         "properties": {"a\\b": 5, 'a"b': "yes" if n else "no", "x/~y": 2}}
        for n in range(3)
    ])  # fmt: skip
    runtime.pipeline.process()
    for definition in (
        {"name": "backslashed", "function": "sum", "property": "a\\b"},
        {"name": "quoted", "function": "count", "where": {'a"b': "yes"}},
        {"name": "pointer_like", "function": "sum", "property": "x/~y"},
    ):
        catalogue.save_definition(runtime.store, definition)
    runtime.pipeline.refresh_computed_traits()
    profile = lookup(runtime.store, "user_id:u1", None)
    computed = view.profile_from_store(runtime.store, profile)["computed_traits"]
    assert (computed["backslashed"], computed["quoted"], computed["pointer_like"]) == (15, 2, 6)


@pytest.mark.parametrize("window", [9_999_999_999, 36_501, 0, True, 1.5])
def test_a_window_past_a_century_or_not_whole_is_refused_and_not_saved(
    runtime: Runtime, window: object
) -> None:
    definition = {"name": "long_window", "function": "count", "window_days": window}
    with pytest.raises(InvalidField, match=r"window_days .* from 1 to 36500") as refused:
        catalogue.save_definition(runtime.store, definition)
    assert refused.value.field == "window_days"
    assert "long_window" not in catalogue.names(runtime.store)
    runtime.pipeline.refresh_computed_traits()  # still runs


@pytest.mark.parametrize("value", [5, "abc", {"name": "x"}, True])
def test_signals_that_are_not_a_list_are_refused(runtime: Runtime, value: object) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with pytest.raises(InvalidField, match="signals must be a list") as refused:
        signals.load_config(runtime.store, {"signals": value}, now)
    assert refused.value.field == "signals"
