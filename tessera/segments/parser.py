"""Text → tree. Syntax errors say where, with the line and a caret under the spot."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import (
    Lark,
    Token,
    Transformer,
    Tree,
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    v_args,
)
from lark.exceptions import VisitError
from lark.tree import Meta

from tessera.segments import literals
from tessera.segments.errors import SegmentSyntaxError, SegmentTooComplex, SegmentValueError
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
    Span,
    Window,
    normalise_reference,
)

__all__ = ["SegmentSyntaxError", "SegmentTooComplex", "SegmentValueError", "parse"]

_NESTING = frozenset({"or_", "and_", "not_"})
_CONDITIONS = frozenset({
    "compare", "member", "contains", "starts_with", "exists", "did", "aggregate",
    "has_third_party", "has_identifier", "anonymous", "known", "seen_on", "in_segment",
    "in_lookalike",
})  # fmt: skip


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=False, propagate_positions=True)


def parse(source: str) -> Node:
    """Parse segment text into a tree.

    Raises:
        SegmentSyntaxError: the text does not follow the grammar.
        SegmentTooComplex: longer, deeper or with more conditions than the limits.
        SegmentValueError: a value cannot be used (a date that does not exist...).
    """
    if not source.strip():
        raise SegmentSyntaxError("the segment is empty", line=1, column=1, source=source)
    if len(source) > literals.MAX_LENGTH:
        line = source.count("\n", 0, literals.MAX_LENGTH) + 1
        column = literals.MAX_LENGTH - source.rfind("\n", 0, literals.MAX_LENGTH)
        raise SegmentTooComplex(
            f"the segment is {len(source):,} characters long; the limit is "
            f"{literals.MAX_LENGTH:,}",
            line=line, column=column, source=source,
        )  # fmt: skip
    try:
        parsed = _parser().parse(source)
    except UnexpectedInput as e:
        line = e.line if isinstance(e.line, int) and e.line > 0 else source.count("\n") + 1
        column = e.column if isinstance(e.column, int) and e.column > 0 else 1
        raise SegmentSyntaxError(_describe(e), line=line, column=column, source=source) from None
    _check_size(parsed, source)
    try:
        return _ToTree(source).transform(parsed)  # type: ignore[no-any-return]
    except VisitError as e:
        if isinstance(e.orig_exc, SegmentValueError):
            raise e.orig_exc from None
        raise


def _check_size(parsed: Tree[Token], source: str) -> None:
    """Refuse, before anything recursive walks it, a tree nested deeper than MAX_DEPTH,
    with more than MAX_CONDITIONS conditions or a list of more than MAX_VALUES values.
    Iterative: 3,000 nested `not` must not overflow the stack here."""
    conditions = 0
    stack: list[tuple[Tree[Token], int]] = [(parsed, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _NESTING:
            depth += 1
            if depth > literals.MAX_DEPTH:
                raise SegmentTooComplex(
                    f"the segment nests and/or/not more than {literals.MAX_DEPTH} levels "
                    "deep; flatten it (not not X is X) or split it into segments combined "
                    "with `in segment`",
                    line=node.meta.line, column=node.meta.column, source=source,
                )  # fmt: skip
        elif node.data in _CONDITIONS:
            conditions += 1
            if conditions > literals.MAX_CONDITIONS:
                raise SegmentTooComplex(
                    f"the segment has more than {literals.MAX_CONDITIONS} conditions; split "
                    "it into segments combined with `in segment`, or use a list: "
                    'traits.city in ["Lyon", "Paris"]',
                    line=node.meta.line, column=node.meta.column, source=source,
                )  # fmt: skip
            if node.data == "member" and len(node.children) - 1 > literals.MAX_VALUES:
                raise SegmentTooComplex(
                    f"the list has {len(node.children) - 1:,} values; the limit is "
                    f"{literals.MAX_VALUES:,}",
                    line=node.meta.line, column=node.meta.column, source=source,
                )  # fmt: skip
        # Reversed, so conditions are counted in reading order (the error points at the
        # first one over the limit).
        stack.extend((c, depth) for c in reversed(node.children) if isinstance(c, Tree))


def _describe(error: UnexpectedInput) -> str:
    if isinstance(error, UnexpectedToken):
        if error.token.type == "$END":
            return "the segment ends too early (an unfinished condition?)"
        return f"unexpected {error.token.value!r}"
    if isinstance(error, UnexpectedCharacters):
        return f"unexpected character {error.char!r}"
    return "cannot read this"


def _field(token: Token) -> tuple[str, str]:
    source, _, name = token.value.partition(".")
    return source, name


def _span(token: Token) -> Span | None:
    """Where lark read this token."""
    if token.line is None or token.column is None:
        return None
    end_line, end_column = token.end_line or token.line, token.end_column or token.column
    return Span(token.line, token.column, end_line, end_column)


def _meta_span(meta: Meta) -> Span | None:
    """Where lark read this rule (none for a rule made only of filtered keywords)."""
    if meta.empty:
        return None
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


class _ToTree(Transformer[Any, Any]):
    """Parse tree → our tree; each literal read (and bounded) by `literals`, its problem
    reported at the token."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self._source = source

    def _problem(self, token: Token, problem: literals.ValueProblem) -> SegmentValueError:
        line, column = token.line or 1, (token.column or 1) + problem.offset
        return SegmentValueError(problem.message, line=line, column=column, source=self._source)

    def _string(self, token: Token) -> str:
        try:
            return literals.read_string(token.value)
        except literals.ValueProblem as e:
            raise self._problem(token, e) from None

    def _number(self, token: Token) -> float:
        try:
            return literals.read_number(token.value)
        except literals.ValueProblem as e:
            raise self._problem(token, e) from None

    def _duration(self, number: Token, unit: Token) -> int:
        try:
            return literals.read_duration(number.value, unit.value)
        except literals.ValueProblem as e:
            raise self._problem(number, e) from None

    def _date(self, token: Token) -> str:
        try:
            return literals.read_date(self._string(token))
        except literals.ValueProblem as e:
            raise self._problem(token, e) from None

    # values
    def string(self, items: list[Token]) -> str:
        return self._string(items[0])

    def number(self, items: list[Token]) -> float:
        return self._number(items[0])

    def true(self, _items: list[Token]) -> bool:
        return True

    def false(self, _items: list[Token]) -> bool:
        return False

    def relative(self, items: list[Token]) -> RelativeTime:
        if not items:
            return RelativeTime(0)
        return RelativeTime(self._duration(items[0], items[1]))

    # pieces
    def last(self, items: list[Token]) -> Window:
        return Window(seconds=self._duration(items[0], items[1]))

    def between(self, items: list[Token]) -> Window:
        start, end = self._date(items[0]), self._date(items[1])
        try:
            literals.check_range(start, end)
        except literals.ValueProblem as e:
            raise self._problem(items[1], e) from None
        return Window(start=start, end=end)

    def filter(self, items: list[Any]) -> Filter:
        return Filter(items[0].value.partition(".")[2], items[1].value, items[2], _span(items[0]))

    def product_filter(self, items: list[Any]) -> Filter:
        name = items[0].value.partition(".")[2]
        return Filter(name, items[1].value, items[2], _span(items[0]), source="product")

    def product_starts_with(self, items: list[Token]) -> Filter:
        name, text = items[0].value.partition(".")[2], self._string(items[1])
        return Filter(name, "starts_with", text, _span(items[0]), source="product")

    def product_contains(self, items: list[Token]) -> Filter:
        name, text = items[0].value.partition(".")[2], self._string(items[1])
        return Filter(name, "contains", text, _span(items[0]), source="product")

    def filters(self, items: list[Filter]) -> tuple[Filter, ...]:
        return tuple(items)

    def event(self, items: list[Any]) -> EventRef:
        filters = items[1] if len(items) > 1 else ()
        return EventRef(self._string(items[0]), filters, _span(items[0]))

    def aggregated(self, items: list[Any]) -> _Aggregated:
        prop, at = None, None
        if isinstance(items[0], Token):
            token = items.pop(0)
            prop, at = token.value.partition(".")[2], _span(token)
        return _Aggregated(prop, at, items[0], items[1] if len(items) > 1 else None)

    # conditions
    def compare(self, items: list[Any]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, items[1].value, items[2], _span(items[0]))

    def member(self, items: list[Any]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "in", tuple(items[1:]), _span(items[0]))

    def contains(self, items: list[Token]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "contains", self._string(items[1]), _span(items[0]))

    def starts_with(self, items: list[Token]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "starts_with", self._string(items[1]), _span(items[0]))

    def exists(self, items: list[Token]) -> Compare:
        source, name = _field(items[0])
        return Compare(source, name, "exists", None, _span(items[0]))

    @v_args(meta=True)
    def did(self, meta: Meta, items: list[Any]) -> Did:
        return Did(items[0], items[1] if len(items) > 1 else None, _meta_span(meta))

    def aggregate(self, items: list[Any]) -> Aggregate:
        inner: _Aggregated = items[1]
        return Aggregate(
            items[0].value.lower(), inner.event, inner.property, inner.window, items[2].value,
            self._number(items[3]), _span(items[0]), inner.property_at,
        )  # fmt: skip

    def has_identifier(self, items: list[Token]) -> HasIdentifier:
        return HasIdentifier(items[0].value, _span(items[0]))

    def has_third_party(self, items: list[Token]) -> HasThirdParty:
        token = items[0]
        text = self._string(token) if token.type == "STRING" else token.value
        return HasThirdParty(normalise_reference(text), _span(token))

    @v_args(meta=True)
    def anonymous(self, meta: Meta, _items: list[Token]) -> Population:
        return Population("anonymous", _meta_span(meta))

    @v_args(meta=True)
    def known(self, meta: Meta, _items: list[Token]) -> Population:
        return Population("known", _meta_span(meta))

    def seen_on(self, items: list[Token]) -> SeenOn:
        token = items[0]
        channel = self._string(token) if token.type == "STRING" else token.value
        return SeenOn(channel, _span(token))

    def in_segment(self, items: list[Token]) -> InSegment:
        return InSegment(self._string(items[0]), _span(items[0]))

    def in_lookalike(self, items: list[Token]) -> InLookalike:
        return InLookalike(self._string(items[0]), _span(items[0]))

    @v_args(meta=True)
    def and_(self, meta: Meta, items: list[Node]) -> And:
        return And(tuple(items), _meta_span(meta))

    @v_args(meta=True)
    def or_(self, meta: Meta, items: list[Node]) -> Or:
        return Or(tuple(items), _meta_span(meta))

    @v_args(meta=True)
    def not_(self, meta: Meta, items: list[Node]) -> Not:
        return Not(items[0], _meta_span(meta))


@dataclass(frozen=True)
class _Aggregated:
    """What is inside `count(...)`: the property (and where), the event, the window."""

    property: str | None
    property_at: Span | None
    event: EventRef
    window: Window | None
