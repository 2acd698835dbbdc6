"""The tracking plans' fast path never says valid where jsonschema says invalid."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tessera.plans.fast import compile_fast

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "required": ["id", "price"],
     "properties": {"id": {"type": "string", "minLength": 2}, "price": {"type": "number",
                    "minimum": 0}, "currency": {"enum": ["EUR", "USD", None]},
                    "qty": {"type": "integer", "maximum": 99},
                    "tags": {"type": "array", "items": {"type": "string"}}},
     "additionalProperties": False},
    {"type": ["object", "null"], "properties": {"flag": {"type": "boolean"},
                                                "kind": {"const": "a"}}},
]  # fmt: skip
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(allow_nan=False)
    | st.sampled_from(["EUR", "USD", "a", "x", "id", "price", "tags", "qty", "flag", "kind"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["id", "price", "currency", "qty", "tags", "flag",
                                       "kind", "other"]), inner, max_size=6),
    max_leaves=12,
)  # fmt: skip


@given(value=VALUES, which=st.sampled_from(range(len(SCHEMAS))))
def test_the_fast_path_accepts_only_what_jsonschema_accepts(value: Any, which: int) -> None:
    schema = SCHEMAS[which]
    fast = compile_fast(schema)
    assert fast is not None
    if fast(value):
        assert Draft202012Validator(schema).is_valid(value)


def test_a_schema_outside_the_subset_has_no_fast_path() -> None:
    assert compile_fast({"type": "string", "pattern": "^a"}) is None
    assert compile_fast({"anyOf": [{"type": "string"}]}) is None
    assert compile_fast({"type": "object", "properties": {"n": {"multipleOf": 2}}}) is None
