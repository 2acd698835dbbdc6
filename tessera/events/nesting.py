"""How deep a message may nest, checked without recursion, and a clipped copy for display.

orjson parses 1,024 levels but serialises only 254, and every answer that wraps a stored
value (the 360° view, a destination's request body) adds levels of its own: a message
nested 250 deep is stored, then breaks the profile view. So the limit is set well below
orjson's, with room for any wrapper Tessera puts around a value, and far above what a
real message uses (Segment's own libraries send under 10 levels).
"""

from __future__ import annotations

import re
from typing import Any

#: The deepest a message may nest, the message object itself being level 1.
MAX_DEPTH = 64
#: What stands in for a value nested past MAX_DEPTH in a clipped copy.
CLIPPED = f"…(nested deeper than {MAX_DEPTH} levels)"
#: Where `cut_deep_text` cuts: under orjson's parsing limit (1,024) and Python's
#: recursion limit (1,000), far above MAX_DEPTH, so what it cut is refused anyway.
TEXT_CUT_DEPTH = 512
#: A JSON string (escapes included), or a run of opening or of closing brackets: the
#: tokens that decide nesting (a run is one match, so a wall of brackets is quick).
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+', re.DOTALL)


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays in `value` nest deeper than `limit` levels.

    Iterative, so it cannot itself hit Python's recursion limit on a 1,000-deep value.
    """
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        children = container.values() if isinstance(container, dict) else container
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def may_exceed(serialised: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """A cheap pre-check on a value's JSON text: fewer brackets than `limit` cannot nest
    deeper than `limit`, so the walk in `depth_exceeds` runs only for the rare message
    with many brackets (two C-speed scans on the ingest hot path)."""
    if isinstance(serialised, bytes):
        return serialised.count(b"{") + serialised.count(b"[") > limit
    return serialised.count("{") + serialised.count("[") > limit


def clipped(value: Any, limit: int = MAX_DEPTH) -> Any:
    """A copy of `value` whose objects and arrays past `limit` levels are replaced by
    CLIPPED, and whose integers beyond 64 bits become text: something that always
    serialises, to keep a refused message in the dead letters."""
    return _clip(value, 1, limit)


def _clip(value: Any, depth: int, limit: int) -> Any:
    if isinstance(value, dict):
        if depth > limit:
            return CLIPPED
        return {str(key): _clip(item, depth + 1, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if depth > limit:
            return CLIPPED
        return [_clip(item, depth + 1, limit) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not fits_64_bits(value):
        return str(value)
    return value


def fits_64_bits(value: int) -> bool:
    """Whether orjson can write this integer."""
    # orjson reads and writes integers from -2**63 to 2**64 - 1 (signed or unsigned).
    return -(2**63) <= value < 2**64


def cut_deep_text(text: bytes, limit: int = TEXT_CUT_DEPTH) -> bytes:
    """JSON text whose values nested past `limit` levels are each replaced by a string.

    No parser in the chain reads JSON nested past 1,024 levels, so without this a batch
    holding one such message would be refused whole, its good neighbours with it. After
    the cut the batch parses, and the message that held the deep value is refused by
    the depth check like any other. Linear in the size of the text; used only when a
    parser has already refused it for its depth.
    """
    mark = f'"…(nested deeper than {limit} levels)"'.encode()
    pieces: list[bytes] = []
    depth = 0
    kept_from = 0
    cut_at = -1
    for token in _TOKENS.finditer(text):
        start, end = token.span()
        if text[start] in b"[{":
            if depth <= limit < depth + (end - start):
                cut_at = start + (limit - depth)  # the opener that reaches limit + 1
            depth += end - start
        elif text[start] in b"]}":
            if cut_at >= 0 and depth - (end - start) <= limit < depth:
                closer = start + (depth - limit - 1)  # the closer back to `limit`
                pieces += [text[kept_from:cut_at], mark]
                kept_from = closer + 1
                cut_at = -1
            depth -= end - start
    pieces.append(text[kept_from:])
    return b"".join(pieces)
