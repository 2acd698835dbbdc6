"""The segment language's tree: what a segment means, independent of how it was written.

Frozen dataclasses; `to_json` / `from_json` give the JSON form the API and the console's
builder use. Text and JSON round-trip through this tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


_SEPARATORS = re.compile(r"\s*[>|]\s*")
#: Identifier types of a browser or device: a profile with only these (and partners'
#: synced ids, `sync_*`) is anonymous. The `anonymous` keyword and the purge share it.
ANONYMOUS_TYPES = frozenset({"anonymous_id", "cookie_id", "device_id", "advertising_id"})


def normalise_reference(text: str) -> str:
    """'IAB:Interest | Travel' or 'iab: 719' → 'Interest > Travel' / '719'."""
    value = text.strip()
    if value.lower().startswith("iab:"):
        value = value[4:].strip()
    parts = [part for part in _SEPARATORS.split(value) if part]
    return " > ".join(parts)


@dataclass(frozen=True)
class RelativeTime:
    """`now` or `now - N unit`; `seconds` before the moment of evaluation."""

    seconds: int = 0


Value = str | float | bool | RelativeTime


@dataclass(frozen=True)
class Window:
    """`in last N days` (`seconds` set) or `between "A" and "B"` (`start`, `end` set)."""

    seconds: int | None = None
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class Filter:
    property: str
    op: str
    value: Value


@dataclass(frozen=True)
class EventRef:
    name: str
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Compare:
    """A trait or computed-trait condition: `op` is =, !=, <, <=, >, >=, in, contains,
    starts_with or exists."""

    source: str  # "traits" | "computed"
    name: str
    op: str
    value: Value | tuple[Value, ...] | None = None


@dataclass(frozen=True)
class Did:
    event: EventRef
    window: Window | None = None


@dataclass(frozen=True)
class Aggregate:
    function: str  # count | sum | avg | min | max
    event: EventRef
    property: str | None
    window: Window | None
    op: str
    value: float


@dataclass(frozen=True)
class HasIdentifier:
    type: str


@dataclass(frozen=True)
class HasThirdParty:
    """In a third-party segment (or one under it), by taxonomy id or path
    ("Interest > Travel"), through any identifier of the profile, unexpired."""

    reference: str


@dataclass(frozen=True)
class Population:
    """'anonymous' (only cookie, device, ad or synced ids) or 'known'."""

    who: str


@dataclass(frozen=True)
class SeenOn:
    channel: str


@dataclass(frozen=True)
class InSegment:
    name: str


@dataclass(frozen=True)
class InLookalike:
    """In the audience a lookalike model picked (audiences/lookalike.py)."""

    name: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = (
    Compare | Did | Aggregate | HasIdentifier | HasThirdParty | Population | SeenOn | InSegment
    | InLookalike | And | Or | Not
)
_KINDS: dict[str, type] = {
    "compare": Compare, "did": Did, "aggregate": Aggregate, "has_identifier": HasIdentifier,
    "has_third_party": HasThirdParty, "population": Population,
    "seen_on": SeenOn, "in_segment": InSegment, "in_lookalike": InLookalike,
    "and": And, "or": Or, "not": Not,
}  # fmt: skip
_NAMES = {cls: name for name, cls in _KINDS.items()}


def to_json(node: Node) -> dict[str, Any]:
    """The JSON form: {"kind": ..., fields...}, values tagged where JSON cannot tell."""
    kind = _NAMES[type(node)]
    if isinstance(node, And | Or):
        return {"kind": kind, "items": [to_json(i) for i in node.items]}
    if isinstance(node, Not):
        return {"kind": kind, "item": to_json(node.item)}
    out: dict[str, Any] = {"kind": kind}
    for key, value in node.__dict__.items():
        out[key] = _value_json(value)
    return out


def from_json(data: Any) -> Node:
    """The inverse of `to_json`; raises ValueError naming what is wrong."""
    if not isinstance(data, dict) or data.get("kind") not in _KINDS:
        raise ValueError(f"each node needs a kind, one of {', '.join(_KINDS)}; got {data!r:.80}")
    kind = data["kind"]
    if kind in ("and", "or"):
        return _KINDS[kind](tuple(from_json(i) for i in data.get("items") or []))  # type: ignore[no-any-return]
    if kind == "not":
        return Not(from_json(data.get("item")))
    fields = {k: _value_from(v) for k, v in data.items() if k != "kind"}
    if kind in ("did", "aggregate"):
        fields["event"] = _event_from(data.get("event"))
        window = data.get("window")
        fields["window"] = Window(**window) if isinstance(window, dict) else None
    if kind == "aggregate":
        fields["value"] = float(fields["value"])
    try:
        return _KINDS[kind](**fields)  # type: ignore[no-any-return]
    except TypeError as e:
        raise ValueError(f"{kind}: {e}") from None


def _event_from(data: Any) -> EventRef:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError("an event needs a name")
    filters = tuple(
        Filter(f["property"], f["op"], _value_from(f["value"])) for f in data.get("filters") or []
    )
    return EventRef(data["name"], filters)


def _value_json(value: Any) -> Any:
    if isinstance(value, RelativeTime):
        return {"now_minus_seconds": value.seconds}
    if isinstance(value, EventRef):
        return {
            "name": value.name,
            "filters": [
                {"property": f.property, "op": f.op, "value": _value_json(f.value)}
                for f in value.filters
            ],
        }
    if isinstance(value, Window):
        return {k: v for k, v in value.__dict__.items() if v is not None}
    if isinstance(value, tuple):
        return [_value_json(v) for v in value]
    return value


def _value_from(value: Any) -> Any:
    if isinstance(value, dict) and "now_minus_seconds" in value:
        return RelativeTime(int(value["now_minus_seconds"]))
    if isinstance(value, list):
        return tuple(_value_from(v) for v in value)
    return value
