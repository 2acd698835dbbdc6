"""A fast path for the JSON Schemas tracking plans mostly hold (pure).

`jsonschema`'s validator costs tens of microseconds per event (measured: 190 µs for a
four-property object on the shared machine), which would make the core's load path
several times slower for a source with a plan. Most plans use a small subset of JSON
Schema: `type`, `properties`, `required`, `enum`, `const`, `additionalProperties: false`,
`items`, `minimum`/`maximum`, `minLength`/`maxLength`. For a schema made only of those,
`compile_fast` builds a plain Python predicate; it answers True only when the value is
certainly valid, and the caller asks jsonschema for every other value (and for the
violations' paths and reasons), so the verdict is always jsonschema's. A schema using any
other keyword gets no fast path (None).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]
_SUPPORTED = frozenset({"type", "properties", "required", "enum", "const", "items",
                        "additionalProperties", "minimum", "maximum", "minLength",
                        "maxLength", "title", "description", "$schema", "examples"})  # fmt: skip
_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def compile_fast(schema: Any) -> Check | None:
    """A predicate that is True only for values the schema accepts; None when the schema
    uses a keyword outside the subset (see the module docstring)."""
    if schema is True or schema == {}:
        return lambda _value: True
    if not isinstance(schema, dict) or not set(schema) <= _SUPPORTED:
        return None
    checks: list[Check] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else kind
        if not isinstance(kinds, list) or any(k not in _TYPES for k in kinds):
            return None
        tests = [_TYPES[k] for k in kinds]
        checks.append(lambda v: any(test(v) for test in tests))
    if "enum" in schema:
        if not isinstance(schema["enum"], list):
            return None
        # Only hashable, non-numeric choices: 1 == 1.0 == True in Python, not in JSON Schema.
        choices = schema["enum"]
        if not all(isinstance(c, str) or c is None for c in choices):
            return None
        allowed = frozenset(choices)
        checks.append(lambda v: (isinstance(v, str) or v is None) and v in allowed)
    if "const" in schema:
        constant = schema["const"]
        if not isinstance(constant, str):
            return None
        checks.append(lambda v: v == constant)
    for keyword, test in (("minimum", lambda v, m: v >= m), ("maximum", lambda v, m: v <= m)):
        if keyword in schema:
            bound = schema[keyword]
            if not isinstance(bound, int | float) or isinstance(bound, bool):
                return None
            checks.append(_numeric(test, bound))
    for keyword, test in (("minLength", lambda n, m: n >= m), ("maxLength", lambda n, m: n <= m)):
        if keyword in schema:
            size = schema[keyword]
            if not isinstance(size, int) or isinstance(size, bool):
                return None
            # len() counts code points, as JSON Schema does.
            checks.append(_length(test, size))
    if not _objects(schema, checks) or not _arrays(schema, checks):
        return None
    return lambda value: all(check(value) for check in checks)


def _numeric(test: Callable[[Any, Any], bool], bound: float) -> Check:
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True  # not a number: the keyword does not apply
        return bool(test(value, bound))

    return check


def _length(test: Callable[[int, int], bool], size: int) -> Check:
    return lambda value: not isinstance(value, str) or test(len(value), size)


def _objects(schema: dict[str, Any], checks: list[Check]) -> bool:
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return False
    compiled: dict[str, Check] = {}
    for name, sub in properties.items():
        found = compile_fast(sub)
        if found is None:
            return False
        compiled[name] = found
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return False
    additional = schema.get("additionalProperties", True)
    if additional not in (True, False):
        return False

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True  # not an object: these keywords do not apply
        if any(name not in value for name in required):
            return False
        if additional is False and any(key not in compiled for key in value):
            return False
        return all(test(value[name]) for name, test in compiled.items() if name in value)

    if compiled or required or additional is False:
        checks.append(check)
    return True


def _arrays(schema: dict[str, Any], checks: list[Check]) -> bool:
    if "items" not in schema:
        return True
    item = compile_fast(schema["items"])
    if item is None:
        return False
    checks.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
    return True
