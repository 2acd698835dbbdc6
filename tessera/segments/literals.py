"""The values a segment is written with, read and bounded before anything runs.

Pure functions from token text to value: each raises `ValueProblem` (a ValueError) with
a message naming the value and the accepted forms; the parser adds the position. What
passes here can always be bound into the compiled SQL and run: a date exists, a window
fits in a DuckDB interval, a number is finite. The limits are documented in
docs/segments.md ("Limits").
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import assert_never

import orjson

from tessera.segments.tree import (
    UNIT_SECONDS,
    Aggregate,
    And,
    Compare,
    Did,
    EventRef,
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

#: Longest window (`in last N days`) or offset (`now - N days`): 100 years of days.
MAX_DAYS = 36_500
MAX_SECONDS = MAX_DAYS * 86_400
#: Digits a number may have before its decimal point (more overflows a double).
MAX_DIGITS = 300
#: Longest segment text, nesting depth (`not`, parentheses, and/or inside each other),
#: conditions in one segment, and values in one `in [...]` list. Deeper nesting than
#: this overflows the SQL parser's recursion; more conditions, DuckDB's expression depth.
MAX_LENGTH = 100_000
MAX_DEPTH = 16
MAX_CONDITIONS = 200
MAX_VALUES = 1_000

DATE_FORMS = '"YYYY-MM-DD", or a time "YYYY-MM-DDTHH:MM[:SS]" with an optional "Z" or "+HH:MM"'
_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)
# Characters that JSON refuses raw inside a string, except the tab, which is kept as
# typed (it arrives from pasted spreadsheet cells).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ValueProblem(ValueError):
    """A literal that cannot be used; `offset` is where in the token the problem is."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message, self.offset = message, offset


def read_string(token: str) -> str:
    """A quoted string token (with JSON escapes: \\" \\\\ \\n \\t \\uXXXX) → its text."""
    control = _CONTROL.search(token)
    if control:
        raise ValueProblem(
            f"control character {control.group()!r} inside a quoted value; write it as an "
            "escape (\\n, \\r, \\u0000 ...) or remove it",
            control.start(),
        )
    try:
        text = orjson.loads(token.replace("\t", "\\t"))
    except orjson.JSONDecodeError:
        bad = re.search(r'\\(?:u(?![0-9a-fA-F]{4})|[^"\\/bfnrtu])', token)
        raise ValueProblem(
            f'invalid escape in {token!r}; inside quotes use \\" \\\\ \\n \\t or \\uXXXX '
            "(a lone surrogate such as \\ud800 is not a character)",
            bad.start() if bad else 0,
        ) from None
    if not isinstance(text, str):  # pragma: no cover - the grammar only lets strings here
        raise ValueProblem(f"expected a quoted string, got {token!r}")
    return text


def read_number(token: str) -> float:
    """A number token → a finite float."""
    if len(token.lstrip("-").split(".")[0]) > MAX_DIGITS:
        raise ValueProblem(
            f"the number {token[:20]}... has more than {MAX_DIGITS} digits; numbers must fit "
            "in a double (about 1.8e308)"
        )
    return float(token)


def read_duration(number: str, unit: str) -> int:
    """`N unit` of a window or a `now -` offset → whole seconds, 0..MAX_SECONDS."""
    amount = read_number(number)
    if amount < 0:
        raise ValueProblem(
            f"a duration cannot be negative ({number} {unit}); write a positive number"
        )
    seconds = amount * UNIT_SECONDS[unit.lower().rstrip("s")]
    if seconds > MAX_SECONDS:
        raise ValueProblem(
            f"{number} {unit} is longer than the limit of {MAX_DAYS:,} days (about 100 "
            "years); to mean all of history, leave the window out"
        )
    return int(seconds)


def read_date(text: str) -> str:
    """A date or time as written in `between "A" and "B"` → the canonical text the SQL
    casts: "YYYY-MM-DD" for a date, "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC for a time (an
    offset is applied here, because DuckDB's timestamp cast ignores it)."""
    if not _DATE.fullmatch(text):
        raise ValueProblem(f"{text!r} is not a date; write {DATE_FORMS}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueProblem(f"{text!r} is not a date that exists ({e}); write {DATE_FORMS}") from e
    if len(text) == 10:
        return text
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError as e:
            raise ValueProblem(f"{text!r} is outside the calendar in UTC") from e
    return moment.isoformat(sep=" ")


def check_range(start: str, end: str) -> None:
    """`between A and B` counts events from A (included) to B (excluded): B after A."""
    if datetime.fromisoformat(end) <= datetime.fromisoformat(start):
        raise ValueProblem(
            f"the window ends ({end}) before or when it starts ({start}); write the earlier "
            'date first: between "START" and "END" (END excluded)'
        )


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "contains", "starts_with", "exists"})


def check_stored(node: Node) -> None:
    """What the parser guarantees, checked again on a tree read from the store (an older
    version may have saved a date that does not exist): ValueProblem naming the value."""
    match node:
        case And() | Or():
            for item in node.items:
                check_stored(item)
        case Not():
            check_stored(node.item)
        case Compare():
            _check_name(node.name)
            _check_value(node.op, node.value)
        case Did():
            _check_event(node.event)
            _check_window(node.window)
        case Aggregate():
            _check_event(node.event)
            _check_window(node.window)
            if node.property is not None:
                _check_name(node.property)
            _check_value(node.op, node.value)
        case (
            HasIdentifier() | HasThirdParty() | Population() | SeenOn() | InSegment()
            | InLookalike()
        ):  # fmt: skip
            pass  # names only, which the checker and the SQL's bound parameters cover
        case _:
            assert_never(node)


def _check_event(event: EventRef) -> None:
    for item in event.filters:
        _check_name(item.property)
        _check_value(item.op, item.value)


def _check_window(window: Window | None) -> None:
    if window is None:
        return
    if window.seconds is not None:
        if not 0 <= window.seconds <= MAX_SECONDS:
            raise ValueProblem(f"a window of {window.seconds} seconds is over {MAX_DAYS:,} days")
        return
    check_range(read_date(str(window.start)), read_date(str(window.end)))


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueProblem(f"{name!r} is not a trait or property name")


def _check_value(op: str, value: Value | tuple[Value, ...] | None) -> None:
    if op not in _OPS:
        raise ValueProblem(f"{op!r} is not a comparison")
    for item in value if isinstance(value, tuple) else (value,):
        if isinstance(item, RelativeTime) and not 0 <= item.seconds <= MAX_SECONDS:
            raise ValueProblem(f"now - {item.seconds} seconds is over {MAX_DAYS:,} days")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueProblem(f"{item} is not a finite number")
