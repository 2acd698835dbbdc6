"""The segment language's errors: each names the spot (line, column, a caret under it)
when there is one, the offending value and what is accepted instead."""

from __future__ import annotations

from tessera.errors import InvalidRequest


def pointer(source: str, line: int, column: int) -> str:
    """The line an error is on, and a caret under its column. Lines are counted on
    '\\n' only, as the parser counts them (str.splitlines also splits on \\x1c, \\x85...)."""
    lines = source.split("\n")
    text = lines[min(max(line, 1), len(lines)) - 1].rstrip("\r")
    # Control characters would garble the caret line: shown as the escapes they are.
    shown = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    offset = len("".join(c if c.isprintable() or c == " " else repr(c)[1:-1]
                         for c in text[: max(column - 1, 0)]))  # fmt: skip
    return f"\n  {shown}\n  {' ' * offset}^"


class PositionedError(InvalidRequest):
    """An error at a spot of the segment text (a base: its subclasses are raised)."""

    code = "segment_positioned"

    def __init__(
        self, message: str, *, line: int | None, column: int | None, source: str | None
    ) -> None:
        at = ""
        if line is not None and column is not None and source is not None:
            at = f" at line {line}, column {column}{pointer(source, line, column)}"
        super().__init__(f"{message}{at}", field="query")
        self.line, self.column = line, column


class SegmentSyntaxError(PositionedError):
    """The text does not follow the grammar."""

    code = "segment_syntax"


class SegmentValueError(PositionedError):
    """A value cannot be used: a date that does not exist, a window too long, a number
    too large, a control character in a string."""

    code = "segment_invalid_value"


class SegmentTooComplex(PositionedError):
    """Nested too deep or too many conditions (limits in `tessera.segments.limits`)."""

    code = "segment_too_complex"


class SegmentCannotRun(InvalidRequest):
    """The segment's SQL failed when run: nothing was saved."""

    code = "segment_cannot_run"
