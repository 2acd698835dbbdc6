"""Text → tree. Syntax errors say where, with the line and a caret under the spot."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from tessera.errors import InvalidRequest
from tessera.segments.tree import (
    UNIT_SECONDS,
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
    Window,
    normalise_reference,
)


class SegmentSyntaxError(InvalidRequest):
    code = "segment_syntax"

    def __init__(self, message: str, *, line: int, column: int, source: str) -> None:
        text_line = source.splitlines()[line - 1] if source.splitlines() else ""
        pointer = f"\n  {text_line}\n  {' ' * (column - 1)}^"
        super().__init__(f"{message} at line {line}, column {column}{pointer}", field="query")
        self.line, self.column = line, column


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=False, propagate_positions=True)


def parse(source: str) -> Node:
    """Parse segment text into a tree; SegmentSyntaxError on bad input."""
    if not source.strip():
        raise SegmentSyntaxError("the segment is empty", line=1, column=1, source=source)
    try:
        parsed = _parser().parse(source)
    except UnexpectedInput as e:
        raise SegmentSyntaxError(
            _describe(e), line=e.line or 1, column=e.column or 1, source=source
        ) from None
    return _ToTree().transform(parsed)  # type: ignore[no-any-return]


def _describe(error: UnexpectedInput) -> str:
    if isinstance(error, UnexpectedToken):
        if error.token.type == "$END":
            return "the segment ends too early (an unfinished condition?)"
        return f"unexpected {error.token.value!r}"
    if isinstance(error, UnexpectedCharacters):
        return f"unexpected character {error.char!r}"
    return "cannot read this"


def _unit_seconds(unit: str) -> int:
    return UNIT_SECONDS[unit.lower().rstrip("s")]


def _string(token: Token) -> str:
    return str(orjson.loads(token.value))


def _field(token: Token) -> tuple[str, str]:
    source, _, name = token.value.partition(".")
    return source, name


class _ToTree(Transformer[Any, Any]):
    # values
    def string(self, items: list[Token]) -> str:
        return _string(items[0])

    def number(self, items: list[Token]) -> float:
        return float(items[0].value)

    def true(self, _items: list[Token]) -> bool:
        return True

    def false(self, _items: list[Token]) -> bool:
        return False

    def relative(self, items: list[Token]) -> RelativeTime:
        if not items:
            return RelativeTime(0)
        return RelativeTime(int(float(items[0].value) * _unit_seconds(items[1].value)))

    # pieces
    def last(self, items: list[Token]) -> Window:
        return Window(seconds=int(float(items[0].value) * _unit_seconds(items[1].value)))

    def between(self, items: list[Token]) -> Window:
        return Window(start=_string(items[0]), end=_string(items[1]))

    def filter(self, items: list[Any]) -> Filter:
        return Filter(items[0].value.partition(".")[2], items[1].value, items[2])

    def filters(self, items: list[Filter]) -> tuple[Filter, ...]:
        return tuple(items)

    def event(self, items: list[Any]) -> EventRef:
        return EventRef(_string(items[0]), items[1] if len(items) > 1 else ())

    def aggregated(self, items: list[Any]) -> tuple[str | None, EventRef, Window | None]:
        prop = None
        if isinstance(items[0], Token):
            prop = items.pop(0).value.partition(".")[2]
        return prop, items[0], items[1] if len(items) > 1 else None

    # conditions
    def compare(self, items: list[Any]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, items[1].value, items[2])

    def member(self, items: list[Any]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "in", tuple(items[1:]))

    def contains(self, items: list[Token]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "contains", _string(items[1]))

    def starts_with(self, items: list[Token]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "starts_with", _string(items[1]))

    def exists(self, items: list[Token]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "exists", None)

    def did(self, items: list[Any]) -> Did:
        return Did(items[0], items[1] if len(items) > 1 else None)

    def aggregate(self, items: list[Any]) -> Aggregate:
        prop, event, window = items[1]
        return Aggregate(
            items[0].value.lower(), event, prop, window, items[2].value, float(items[3].value)
        )

    def has_identifier(self, items: list[Token]) -> HasIdentifier:
        return HasIdentifier(items[0].value)

    def has_third_party(self, items: list[Token]) -> HasThirdParty:
        token = items[0]
        text = _string(token) if token.type == "STRING" else token.value
        return HasThirdParty(normalise_reference(text))

    def anonymous(self, _items: list[Token]) -> Population:
        return Population("anonymous")

    def known(self, _items: list[Token]) -> Population:
        return Population("known")

    def seen_on(self, items: list[Token]) -> SeenOn:
        token = items[0]
        return SeenOn(_string(token) if token.type == "STRING" else token.value)

    def in_segment(self, items: list[Token]) -> InSegment:
        return InSegment(_string(items[0]))

    def in_lookalike(self, items: list[Token]) -> InLookalike:
        return InLookalike(_string(items[0]))

    def and_(self, items: list[Node]) -> And:
        return And(tuple(items))

    def or_(self, items: list[Node]) -> Or:
        return Or(tuple(items))

    def not_(self, items: list[Node]) -> Not:
        return Not(items[0])
