"""The segment language's tree: what a segment means, independent of how it was written.

Frozen dataclasses; `to_json` / `from_json` give the JSON form the API and the console's
builder use. Text and JSON round-trip through this tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, assert_never, get_args

# Re-exported (the `as` form) for audiences/lifetime.py; the one definition is in identity/.
from tessera.identity.identifiers import ANONYMOUS_TYPES as ANONYMOUS_TYPES

UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


_SEPARATORS = re.compile(r"\s*[>|]\s*")


def normalise_reference(text: str) -> str:
    """'IAB:Interest | Travel' or 'iab: 719' → 'Interest > Travel' / '719'."""
    value = text.strip()
    if value.lower().startswith("iab:"):
        value = value[4:].strip()
    parts = [part for part in _SEPARATORS.split(value) if part]
    return " > ".join(parts)


@dataclass(frozen=True)
class Span:
    """Where a piece of the tree was written: lark's line and column (1-based), and where
    it ends. Trees built from JSON have none."""

    line: int
    column: int
    end_line: int
    end_column: int


#: Marks a position field: not part of what the node means (two trees written differently
#: are equal), not in its JSON form or its repr.
_POSITION = {"position": True}


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
    """`properties.NAME op value`, or with `source` "product" a condition on the products
    the event names, read from the catalogue: `product.category starts with "Sport"` (op
    is then also contains or starts_with)."""

    property: str
    op: str
    value: Value
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the property
    source: str = "properties"  # "properties" | "product"


@dataclass(frozen=True)
class EventRef:
    name: str
    filters: tuple[Filter, ...] = ()
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the event's name


@dataclass(frozen=True)
class Compare:
    """A trait or computed-trait condition: `op` is =, !=, <, <=, >, >=, in, contains,
    starts_with or exists."""

    source: str  # "traits" | "computed"
    name: str
    op: str
    value: Value | tuple[Value, ...] | None = None
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the field, `traits.name`


@dataclass(frozen=True)
class Did:
    event: EventRef
    window: Window | None = None
    at: Span | None = field(default=None, compare=False, repr=False, metadata=_POSITION)


@dataclass(frozen=True)
class Aggregate:
    function: str  # count | sum | avg | min | max
    event: EventRef
    property: str | None
    window: Window | None
    op: str
    value: float
    at: Span | None = field(default=None, compare=False, repr=False, metadata=_POSITION)
    property_at: Span | None = field(default=None, compare=False, repr=False, metadata=_POSITION)


@dataclass(frozen=True)
class HasIdentifier:
    type: str
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the identifier type


@dataclass(frozen=True)
class HasThirdParty:
    """In a third-party segment (or one under it), by taxonomy id or path
    ("Interest > Travel"), through any identifier of the profile, unexpired."""

    reference: str
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the reference


@dataclass(frozen=True)
class Population:
    """'anonymous' (only cookie, device, ad or synced ids) or 'known'."""

    who: str
    at: Span | None = field(default=None, compare=False, repr=False, metadata=_POSITION)


@dataclass(frozen=True)
class SeenOn:
    channel: str
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the channel


@dataclass(frozen=True)
class InSegment:
    name: str
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the segment's name


@dataclass(frozen=True)
class InLookalike:
    """In the audience a lookalike model picked (audiences/lookalike.py)."""

    name: str
    at: Span | None = field(
        default=None, compare=False, repr=False, metadata=_POSITION
    )  # the lookalike's name


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    at: Span | None = field(default=None, compare=False, repr=False, metadata=_POSITION)


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]
    at: Span | None = field(default=None, compare=False, repr=False, metadata=_POSITION)


@dataclass(frozen=True)
class Not:
    item: Node
    at: Span | None = field(default=None, compare=False, repr=False, metadata=_POSITION)


#: The closed set of node types. Every stage (check, compile, describe, evaluate, JSON)
#: dispatches with `match` over it and ends in `assert_never`, so mypy names each stage
#: that forgets a kind added here; tests/unit/test_segment_stages.py runs every stage on
#: one example of each.
Node = (
    Compare
    | Did
    | Aggregate
    | HasIdentifier
    | HasThirdParty
    | Population
    | SeenOn
    | InSegment
    | InLookalike
    | And
    | Or
    | Not
)
#: A condition: a node that is not and/or/not.
Condition = (
    Compare
    | Did
    | Aggregate
    | HasIdentifier
    | HasThirdParty
    | Population
    | SeenOn
    | InSegment
    | InLookalike
)
NODE_TYPES: tuple[type, ...] = get_args(Node)
_KINDS: dict[str, type] = {
    "compare": Compare, "did": Did, "aggregate": Aggregate, "has_identifier": HasIdentifier,
    "has_third_party": HasThirdParty, "population": Population,
    "seen_on": SeenOn, "in_segment": InSegment, "in_lookalike": InLookalike,
    "and": And, "or": Or, "not": Not,
}  # fmt: skip
_NAMES = {cls: name for name, cls in _KINDS.items()}
_NOT_FIELDS = frozenset({"kind", "at", "property_at"})


def children(node: Node) -> tuple[Node, ...]:
    """The nodes directly under this one: the items of and/or, the item of not, none for a
    condition. The one walk every tree traversal outside the stages builds on."""
    match node:
        case And() | Or():
            return node.items
        case Not():
            return (node.item,)
        case (
            Compare() | Did() | Aggregate() | HasIdentifier() | HasThirdParty() | Population()
            | SeenOn() | InSegment() | InLookalike()
        ):  # fmt: skip
            return ()
        case _:
            assert_never(node)


def to_json(node: Node) -> dict[str, Any]:
    """The JSON form: {"kind": ..., fields...}, values tagged where JSON cannot tell."""
    kind = _NAMES[type(node)]
    match node:
        case And() | Or():
            return {"kind": kind, "items": [to_json(i) for i in node.items]}
        case Not():
            return {"kind": kind, "item": to_json(node.item)}
        case (
            Compare() | Did() | Aggregate() | HasIdentifier() | HasThirdParty() | Population()
            | SeenOn() | InSegment() | InLookalike()
        ):  # fmt: skip
            return {"kind": kind, **_fields_json(node)}
        case _:
            assert_never(node)


def _fields_json(value: Any) -> dict[str, Any]:
    return {
        item.name: _value_json(getattr(value, item.name))
        for item in fields(value)
        if not item.metadata.get("position")
    }


def _filter_json(item: Filter) -> dict[str, Any]:
    """A filter's JSON: `source` only for product conditions, so the JSON of every segment
    written before they existed is unchanged."""
    found = _fields_json(item)
    if item.source == "properties":
        found.pop("source")
    return found


def from_json(data: Any) -> Node:
    """The inverse of `to_json`; raises ValueError naming what is wrong."""
    if not isinstance(data, dict) or data.get("kind") not in _KINDS:
        raise ValueError(f"each node needs a kind, one of {', '.join(_KINDS)}; got {data!r:.80}")
    kind = data["kind"]
    if kind in ("and", "or"):
        return _KINDS[kind](tuple(from_json(i) for i in data.get("items") or []))  # type: ignore[no-any-return]
    if kind == "not":
        return Not(from_json(data.get("item")))
    # Positions are not part of the JSON form: a tree from JSON has none.
    values = {k: _value_from(v) for k, v in data.items() if k not in _NOT_FIELDS}
    if kind in ("did", "aggregate"):
        values["event"] = _event_from(data.get("event"))
        window = data.get("window")
        values["window"] = Window(**window) if isinstance(window, dict) else None
    if kind == "aggregate":
        values["value"] = float(values["value"])
    try:
        return _KINDS[kind](**values)  # type: ignore[no-any-return]
    except TypeError as e:
        raise ValueError(f"{kind}: {e}") from None


def _event_from(data: Any) -> EventRef:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError("an event needs a name")
    filters = tuple(
        Filter(
            f["property"], f["op"], _value_from(f["value"]), source=f.get("source", "properties")
        )
        for f in data.get("filters") or []
    )
    return EventRef(data["name"], filters)


def _value_json(value: Any) -> Any:
    if isinstance(value, RelativeTime):
        return {"now_minus_seconds": value.seconds}
    if isinstance(value, EventRef):
        return {"name": value.name, "filters": [_filter_json(f) for f in value.filters]}
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
