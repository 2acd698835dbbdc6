"""What the fuzzers send: hostile strings and numbers, JSON values, and documents for the
admin API's free-form bodies, shaped like what the server reads."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tessera.audiences import signals
from tessera.profiles import computed
from tests.fuzz.conftest import KNOWN

# Strings that break parsers, paths and SQL more often than random text does: quotes,
# escapes, separators, control characters, huge numbers and odd dates.
HOSTILE_CHARACTERS = list("\\\"'=:.,;[]{}()$%*@+-#/ \t\n\r\x00\x01\x7fé€a1")
HOSTILE_WORDS = [
    "99999999999999999999", "-1", "0", "1e309", "NaN", "1997-13-01", "1997-02-30",
    "null", "true", "[]", "{}", "a\\=x", 'a"b', "user_id:", ":", "prf_", "email:a@b",
    'did "Order Completed" between "1997-13-01" and "1997-04-01"', 'traits.city = "a\tb"',
    'did "Order Completed" in last 99999999999999999999 days', 'traits.plan = "\x00"',
]  # fmt: skip
hostile_strings = st.one_of(
    st.sampled_from(HOSTILE_WORDS),
    st.text(alphabet=st.sampled_from(HOSTILE_CHARACTERS), min_size=1, max_size=12),
)


def sometimes_hostile(values: Any) -> Any:
    """The generated parameters or body, each string field maybe replaced by a hostile one."""
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries(
        {
            key: st.one_of(st.just(value), hostile_strings)
            if isinstance(value, str)
            else st.just(value)
            for key, value in values.items()
        }
    )


# Numbers at the edges of the types that store them: 32 and 64 bits, floats, days.
hostile_numbers = st.sampled_from([0, -1, 36_501, 2**31, 2**63, 10**10, 10**20, 1e308, -0.0])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    hostile_numbers,
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_strings,
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def mostly(likely: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four a value the server expects here, else any JSON value, so that
    the checks behind the first field are passed often enough to reach the next."""
    return st.one_of(likely, likely, likely, json_values)


def either(*likely: Any) -> st.SearchStrategy[Any]:
    return mostly(st.sampled_from(likely))


names = mostly(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True))
keys = st.one_of(st.text(max_size=8), hostile_strings)
computed_trait = st.fixed_dictionaries(
    {"name": names, "function": either(*computed.FUNCTIONS)},
    optional={
        "event": either("Order Completed", "Product Viewed"),
        "property": either("revenue", "a\\b", 'a"b', ""),
        "where": st.one_of(st.dictionaries(keys, json_scalars, max_size=2), json_values),
        "window_days": mostly(st.one_of(hostile_numbers, st.integers())),
    },
)
signal_trait = st.fixed_dictionaries(
    {"name": names},
    optional={
        "when": st.one_of(
            st.dictionaries(st.one_of(st.sampled_from(signals.CONDITIONS), keys),
                            either("/travel", "FR", "mobile")),
            json_values,
        ),
        "lifetime_days": mostly(st.one_of(hostile_numbers, st.integers())),
        "value": json_values,
    },
)  # fmt: skip
signals_document = st.fixed_dictionaries(
    {"signals": st.one_of(st.lists(signal_trait, max_size=3), json_values)},
    optional={
        "taxonomy": either(KNOWN.taxonomy, "iab-content"),
        "categories": st.one_of(st.dictionaries(keys, either("1", "720")), json_values),
    },
)
# Bodies the schema leaves free (a JSON object): documents with the keys the server reads,
# each with a likely or a random value, so the checks behind them run.
FREE_FORM_BODIES = {
    "POST /api/computed-traits": computed_trait,
    "PUT /api/audiences/signals": signals_document,
}
