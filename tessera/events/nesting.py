"""How deep a message may nest, checked without recursion, and a clipped copy for display.

orjson parses 1,024 levels but serialises only 254, and every answer that wraps a stored
value (the 360° view, a destination's request body) adds levels of its own: a message
nested 250 deep is stored, then breaks the profile view. So the limit is set well below
orjson's, with room for any wrapper Tessera puts around a value, and far above what a
real message uses (Segment's own libraries send under 10 levels).
"""

from __future__ import annotations

from typing import Any

#: The deepest a message may nest, the message object itself being level 1.
MAX_DEPTH = 64
#: What stands in for a value nested past MAX_DEPTH in a clipped copy.
CLIPPED = f"…(nested deeper than {MAX_DEPTH} levels)"


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


def may_exceed(serialised: str, limit: int = MAX_DEPTH) -> bool:
    """A cheap pre-check on a value's JSON text: fewer brackets than `limit` cannot nest
    deeper than `limit`, so the walk in `depth_exceeds` runs only for the rare message
    with many brackets (two C-speed scans on the ingest hot path)."""
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
