"""Tree + catalogue → the same tree or an error at the spot, with a suggestion.

The catalogue is what the data has: trait names, computed traits, event names and their
properties, identifier types, channels and segments. A name nobody has sent is almost
always a typo: `unknown trait 'contry' (did you mean 'country'?)`.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import assert_never

from tessera.catalog.joins import READABLE as PRODUCT_FIELDS
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
    Population,
    SeenOn,
    Span,
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
    """Every name in the tree must be in the catalogue; the first that is not is an error,
    placed where the parser read that name."""
    for name in _names(node, known):
        if name.value not in name.choices:
            at = name.at or Span(1, 1, 1, 1)  # a tree built from JSON has no positions
            close = difflib.get_close_matches(name.value, sorted(name.choices), n=1, cutoff=0.6)
            raise SegmentCheckError(
                f"unknown {name.kind} {name.value!r}",
                line=at.line,
                column=at.column,
                source=source,
                suggestion=close[0] if close else None,
            )
    return node


@dataclass(frozen=True)
class _Name:
    """A name the tree uses, where it was written, and the names that would do."""

    kind: str
    value: str
    at: Span | None
    choices: set[str]


def _names(node: Node, known: Catalogue) -> Iterator[_Name]:
    match node:
        case And() | Or():
            for item in node.items:
                yield from _names(item, known)
        case Not():
            yield from _names(node.item, known)
        case Compare(source="traits"):
            yield _Name("trait", node.name, node.at, known.traits)
        case Compare():
            yield _Name("computed trait", node.name, node.at, known.computed)
        case Did():
            yield from _event_names(node.event, known)
        case Aggregate():
            yield from _event_names(node.event, known)
            if node.property:
                properties = known.events.get(node.event.name, set())
                yield _Name("property", node.property, node.property_at, properties)
        case HasIdentifier():
            yield _Name("identifier type", node.type, node.at, known.identifier_types)
        case HasThirdParty():
            reference = node.reference if node.reference.isdigit() else node.reference.lower()
            yield _Name("third-party segment", reference, node.at, known.third_party)
        case SeenOn():
            yield _Name("channel", node.channel, node.at, known.channels)
        case InSegment():
            yield _Name("segment", node.name, node.at, known.segments)
        case InLookalike():
            yield _Name("lookalike", node.name, node.at, known.lookalikes)
        case Population():
            pass  # no name: anonymous or known
        case _:
            assert_never(node)


def _event_names(event: EventRef, known: Catalogue) -> Iterator[_Name]:
    yield _Name("event", event.name, event.at, set(known.events))
    properties = known.events.get(event.name, set())
    for item in event.filters:
        if item.source == "product":
            yield _Name("product field", item.property, item.at, set(PRODUCT_FIELDS))
        else:
            yield _Name("property", item.property, item.at, properties)
