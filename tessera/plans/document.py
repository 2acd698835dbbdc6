"""A tracking plan's document, checked once and compiled into validators (pure).

    {"events": {"Order Completed": {"properties": {JSON Schema}},
                "page": {"properties": {...}}},
     "identify": {"traits": {JSON Schema}},
     "allow_unplanned": false}

`events` is keyed by a track event's name, or by a message type (`page`, `screen`,
`group`, `alias`) for the other types; `identify` holds the traits' schema. An event the
plan does not name is a violation unless `allow_unplanned`. Schemas are JSON Schema
(draft 2020-12), checked with the `jsonschema` library when the plan is saved, and
compiled once per plan, never per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tessera.errors import InvalidField
from tessera.plans.fast import Check, compile_fast

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

MODES = ("allow", "flag", "block")
#: message types whose events are named by their type, not by an event name
TYPE_KEYED = ("page", "screen", "group", "alias")


@dataclass(frozen=True, slots=True)
class Violation:
    """What is wrong with one event: where (`properties.total`) and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Schema:
    """A compiled schema: jsonschema's validator, and a fast predicate when the schema
    allows one (fast.py): True from it means valid; anything else asks the validator."""

    validator: Draft202012Validator
    fast: Check | None


@dataclass(frozen=True)
class CompiledPlan:
    mode: str
    allow_unplanned: bool
    events: dict[str, Schema | None]
    traits: Schema | None

    def check(self, kind: str, event: str | None, properties: Any, traits: Any) -> list[Violation]:
        """The violations of one message: `kind` its type, `event` a track's name, and its
        properties and traits as the log holds them (None when absent)."""
        if kind == "identify":
            return _errors(self.traits, traits if traits is not None else {}, "traits")
        key = event if kind == "track" else kind
        if key is None:
            return []
        if key not in self.events:
            if self.allow_unplanned:
                return []
            return [Violation("event", f"{key!r} is not in the tracking plan")]
        value = properties if properties is not None else {}
        return _errors(self.events[key], value, "properties")


def compile_plan(mode: str, document: Any) -> CompiledPlan:
    """Check and compile a plan. Raises InvalidField naming what is wrong and where."""
    if mode not in MODES:
        raise InvalidField(
            f"mode {mode!r} must be one of {', '.join(MODES)}", field="mode", value=mode
        )
    if not isinstance(document, dict):
        raise InvalidField(
            "a tracking plan is a JSON object with 'events' and 'identify'", field="plan"
        )
    unknown = set(document) - {"events", "identify", "allow_unplanned"}
    if unknown:
        raise InvalidField(
            f"unknown key {sorted(unknown)[0]!r} in the plan; it takes events, "
            "identify and allow_unplanned",
            field="plan",
        )
    events = document.get("events") or {}
    if not isinstance(events, dict):
        raise InvalidField("'events' maps event names to {\"properties\": schema}", field="events")
    compiled: dict[str, Schema | None] = {}
    for name, spec in events.items():
        if not isinstance(spec, dict):
            raise InvalidField(
                f'event {name!r} takes {{"properties": schema}}', field=f"events.{name}"
            )
        compiled[str(name)] = _validator(spec.get("properties"), f"events.{name}.properties")
    identify = document.get("identify") or {}
    if not isinstance(identify, dict):
        raise InvalidField("'identify' takes {\"traits\": schema}", field="identify")
    return CompiledPlan(
        mode=mode,
        allow_unplanned=bool(document.get("allow_unplanned", False)),
        events=compiled,
        traits=_validator(identify.get("traits"), "identify.traits"),
    )


def _validator(schema: Any, where: str) -> Schema | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise InvalidField(f"{where} must be a JSON Schema object", field=where)
    # Imported here: jsonschema (with its format checkers and referencing) costs ~0.1 s to
    # import, paid only by a plan that has a schema.
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        path = ".".join(str(p) for p in e.path)
        raise InvalidField(
            f"{where}{'.' + path if path else ''} is not a valid JSON Schema: {e.message}",
            field=where,
        ) from None
    return Schema(Draft202012Validator(schema), compile_fast(schema))


def _errors(schema: Schema | None, value: Any, root: str) -> list[Violation]:
    # The fast predicate, then is_valid (it stops at the first failure): most events are
    # valid, and only an invalid one pays for the full list of errors.
    if schema is None or (schema.fast is not None and schema.fast(value)):
        return []
    validator = schema.validator
    if validator.is_valid(value):
        return []
    return [
        Violation(
            ".".join([root, *(str(p) for p in error.absolute_path)]),
            _reason(error.validator, error.message),
        )
        for error in validator.iter_errors(value)
    ]


def _reason(keyword: object, message: str) -> str:
    """The library's message, cut: it quotes the offending value, which may be personal."""
    return f"{keyword}: {message}"[:300]
