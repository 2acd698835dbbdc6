"""Tree + catalogue → the same tree or an error at the spot, with a suggestion.

The catalogue is what the data has: trait names, computed traits, event names and their
properties, identifier types, channels and segments. A name nobody has sent is almost
always a typo: `unknown trait 'contry' (did you mean 'country'?)`.
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass, field

from tessera.errors import InvalidRequest
from tessera.identity.identifiers import STANDARD_TYPES
from tessera.segments.errors import pointer
from tessera.segments.tree import (
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
    SeenOn,
)
from tessera.store import Store


class SegmentCheckError(InvalidRequest):
    code = "segment_unknown_name"

    def __init__(
        self, message: str, *, line: int, column: int, source: str, suggestion: str | None
    ) -> None:
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        at = f" at line {line}, column {column}{pointer(source, line, column)}"
        super().__init__(f"{message}{hint}{at}", field="query")
        self.line, self.column, self.suggestion = line, column, suggestion


@dataclass
class Catalogue:
    traits: set[str] = field(default_factory=set)
    computed: set[str] = field(default_factory=set)
    events: dict[str, set[str]] = field(default_factory=dict)
    identifier_types: set[str] = field(default_factory=lambda: set(STANDARD_TYPES))
    channels: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    #: taxonomy ids and lower-case paths, for `has third_party`
    third_party: set[str] = field(default_factory=set)
    lookalikes: set[str] = field(default_factory=set)


_CACHE: dict[int, tuple[float, Catalogue]] = {}


def catalogue(store: Store, computed_names: set[str], max_age: float = 30.0) -> Catalogue:
    """What the data holds, read from the store (cached for `max_age` seconds)."""
    cached = _CACHE.get(id(store))
    if cached and time.monotonic() - cached[0] < max_age:
        found = cached[1]
    else:
        found = Catalogue()
        found.traits = {
            r[0]
            for r in store.fetch_all(
                "SELECT DISTINCT unnest(json_keys(traits)) FROM profile_summaries"
            )
        }
        for event, prop in store.fetch_all(
            "SELECT DISTINCT event, unnest(json_keys(coalesce(properties, '{}'))) "
            "FROM events WHERE type = 'track'"
        ):
            found.events.setdefault(event, set()).add(prop)
        for (event,) in store.fetch_all("SELECT DISTINCT event FROM events WHERE type = 'track'"):
            found.events.setdefault(event, set())
        found.identifier_types |= {
            r[0] for r in store.fetch_all("SELECT DISTINCT type FROM identities")
        }
        found.channels = {r[0] for r in store.fetch_all("SELECT DISTINCT channel FROM sources")}
        _CACHE[id(store)] = (time.monotonic(), found)
    found.computed = set(computed_names)
    found.segments = {r[0] for r in store.fetch_all("SELECT name FROM segments")}
    found.lookalikes = {r[0] for r in store.fetch_all("SELECT name FROM lookalikes")}
    # Read each time like segments: a taxonomy loaded a second ago must be usable at once.
    found.third_party = {
        value
        for row in store.fetch_all("SELECT id, lower(path) FROM taxonomy_nodes")
        for value in row
    }
    return found


def forget(store: Store) -> None:
    """Drop the cached catalogue of this store (the next `catalogue` call reads it)."""
    _CACHE.pop(id(store), None)


def check(node: Node, known: Catalogue, source: str) -> Node:
    """Every name in the tree must be in the catalogue; the first that is not is an error."""
    for kind, name, needle, choices in _names(node, known):
        if name not in choices:
            line, column = _locate(source, needle)
            close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
            raise SegmentCheckError(
                f"unknown {kind} {name!r}",
                line=line,
                column=column,
                source=source,
                suggestion=close[0] if close else None,
            )
    return node


def _names(node: Node, known: Catalogue):  # type: ignore[no-untyped-def]
    if isinstance(node, And | Or):
        for item in node.items:
            yield from _names(item, known)
    elif isinstance(node, Not):
        yield from _names(node.item, known)
    elif isinstance(node, Compare):
        if node.source == "traits":
            yield "trait", node.name, f"traits.{node.name}", known.traits
        else:
            yield "computed trait", node.name, f"computed.{node.name}", known.computed
    elif isinstance(node, Did | Aggregate):
        yield from _event_names(node.event, known)
        if isinstance(node, Aggregate) and node.property:
            yield (
                "property",
                node.property,
                f"properties.{node.property}",
                known.events.get(node.event.name, set()),
            )
    elif isinstance(node, HasIdentifier):
        yield "identifier type", node.type, node.type, known.identifier_types
    elif isinstance(node, HasThirdParty):
        needle = node.reference.split(" > ")[0]
        reference = node.reference if node.reference.isdigit() else node.reference.lower()
        yield "third-party segment", reference, needle, known.third_party
    elif isinstance(node, SeenOn):
        yield "channel", node.channel, node.channel, known.channels
    elif isinstance(node, InSegment):
        yield "segment", node.name, f'"{node.name}"', known.segments
    elif isinstance(node, InLookalike):
        yield "lookalike", node.name, f'"{node.name}"', known.lookalikes


def _event_names(event: EventRef, known: Catalogue):  # type: ignore[no-untyped-def]
    yield "event", event.name, f'"{event.name}"', set(known.events)
    for item in event.filters:
        yield (
            "property",
            item.property,
            f"properties.{item.property}",
            known.events.get(event.name, set()),
        )


def _locate(source: str, needle: str) -> tuple[int, int]:
    match = re.search(re.escape(needle), source)
    offset = match.start() if match else 0
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column
