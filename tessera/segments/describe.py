"""Tree → plain English, for people reading a segment they did not write."""

from __future__ import annotations

from typing import assert_never

from tessera.segments.tree import (
    Aggregate,
    And,
    Compare,
    Did,
    EventRef,
    Filter,
    HasIdentifier,
    HasThirdParty,
    InLookalike,
    InSegment,
    Node,
    Not,
    Or,
    Population,
    RelativeTime,
    SeenOn,
    Value,
    Window,
)

_OPS = {"=": "is", "!=": "is not", "<": "is less than", "<=": "is at most",
        ">": "is more than", ">=": "is at least"}  # fmt: skip
_TIME_OPS = {"<": "is before", "<=": "is at or before", ">": "is after", ">=": "is at or after",
             "=": "is", "!=": "is not"}  # fmt: skip
_FUNCTIONS = {"count": "number of", "sum": "total", "avg": "average", "min": "smallest",
              "max": "largest"}  # fmt: skip


def describe(node: Node) -> str:
    """`traits.country = "FR" and not did "Email Opened" in last 30 days` →
    `country is "FR", and did not do "Email Opened" in the last 30 days`."""
    match node:
        case And():
            return ", and ".join(_grouped(i) for i in node.items)
        case Or():
            return ", or ".join(_grouped(i) for i in node.items)
        case Not(item=Did() as did):
            return f"did not do {_event(did.event)}{_window(did.window)}"
        case Not():
            return f"not ({describe(node.item)})"
        case Compare():
            return _compare(node)
        case Did():
            return f"did {_event(node.event)}{_window(node.window)}"
        case Aggregate():
            return _aggregate(node)
        case HasIdentifier():
            return f"has a known {node.type.replace('_', ' ')}"
        case HasThirdParty():
            return f'is in the third-party segment "{node.reference}"'
        case Population():
            return "is anonymous" if node.who == "anonymous" else "is a known person"
        case SeenOn():
            return f"was seen on {node.channel}"
        case InLookalike():
            return f'is in the lookalike audience "{node.name}"'
        case InSegment():
            return f'is in segment "{node.name}"'
        case _:
            assert_never(node)


def _aggregate(node: Aggregate) -> str:
    what = (
        f"{_FUNCTIONS[node.function]} {_event(node.event)}"
        if node.function == "count"
        else f"{_FUNCTIONS[node.function]} {node.property} of {_event(node.event)}"
    )
    return f"{what}{_window(node.window)} {_OPS[node.op]} {_number(node.value)}"


def _grouped(node: Node) -> str:
    text = describe(node)
    return f"({text})" if isinstance(node, And | Or) else text


def _compare(node: Compare) -> str:
    subject = node.name if node.source == "traits" else f"{node.name} (computed)"
    if node.op == "exists":
        return f"{subject} is known"
    if node.op == "contains":
        return f"{subject} contains {_value(node.value)}"
    if node.op == "starts_with":
        return f"{subject} starts with {_value(node.value)}"
    if node.op == "in":
        assert isinstance(node.value, tuple)
        return f"{subject} is one of {', '.join(_value(v) for v in node.value)}"
    ops = _TIME_OPS if isinstance(node.value, RelativeTime) else _OPS
    return f"{subject} {ops[node.op]} {_value(node.value)}"


def _event(event: EventRef) -> str:
    text = f'"{event.name}"'
    if event.filters:
        text += " where " + " and ".join(_filter(f) for f in event.filters)
    return text


def _filter(item: Filter) -> str:
    subject = f"a product's {item.property}" if item.source == "product" else item.property
    if item.op == "starts_with":
        return f"{subject} starts with {_value(item.value)}"
    if item.op == "contains":
        return f"{subject} contains {_value(item.value)}"
    return f"{subject} {_OPS[item.op]} {_value(item.value)}"


def _window(window: Window | None) -> str:
    if window is None:
        return " ever"
    if window.seconds is not None:
        return f" in the last {_duration(window.seconds)}"
    return f" between {window.start} and {window.end}"


def _duration(seconds: int) -> str:
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _value(value: Value | tuple[Value, ...] | None) -> str:
    if isinstance(value, RelativeTime):
        return "now" if value.seconds == 0 else f"{_duration(value.seconds)} ago"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return _number(value)
    return f'"{value}"'


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
