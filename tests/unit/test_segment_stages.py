"""Every stage of the segment language handles every kind of node, and check errors point
where the parser read the name.

A new condition kind is added to `tree.Node`; mypy's `assert_never` names each stage whose
`match` forgets it, and this test fails until the kind has an example here that every
stage (JSON, check, compile one and many, describe, stored-tree checks, the reference
interpreter) and every walk over trees (`tree.children`, which `why` explains by, and the
service's `referenced` and `affected`) has run on.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tessera.segments.check import Catalogue, SegmentCheckError, check
from tessera.segments.compiler import compile_segment, compile_segments
from tessera.segments.describe import describe
from tessera.segments.literals import check_stored
from tessera.segments.parser import parse
from tessera.segments.service import Changes, affected, referenced
from tessera.segments.tree import (
    NODE_TYPES,
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
    SeenOn,
    Window,
    children,
    from_json,
    to_json,
)
from tests.segment_interpreter import EventFact, ProfileFacts, holds

_ORDER = EventRef("Order Completed", (Filter("currency", "=", "EUR"),))
EXAMPLES: dict[type, Node] = {
    Compare: Compare("traits", "country", "=", "FR"),
    Did: Did(_ORDER, Window(seconds=7 * 86400)),
    Aggregate: Aggregate("sum", _ORDER, "revenue", None, ">", 100.0),
    HasIdentifier: HasIdentifier("email"),
    HasThirdParty: HasThirdParty("720"),
    Population: Population("known"),
    SeenOn: SeenOn("web"),
    InSegment: InSegment("vip"),
    InLookalike: InLookalike("travel-like"),
    And: And((Compare("computed", "order_count", ">=", 2.0), SeenOn("web"))),
    Or: Or((HasIdentifier("email"), InSegment("vip"))),
    Not: Not(Did(EventRef("Email Opened"))),
}
EVERYTHING = Catalogue(
    traits={"country"},
    computed={"order_count"},
    events={"Order Completed": {"currency", "revenue"}, "Email Opened": set()},
    identifier_types={"email"},
    channels={"web"},
    segments={"vip"},
    third_party={"720"},
    lookalikes={"travel-like"},
)
NOW = datetime(2026, 3, 31, 12, 0)
FACTS = ProfileFacts(
    traits={"country": "FR"},
    computed={"order_count": 3},
    events=[EventFact("Order Completed", datetime(2026, 3, 30), {"currency": "EUR"})],
    identifier_types={"email"},
    channels={"web"},
)


def test_every_node_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(NODE_TYPES)
    assert all(type(node) is kind for kind, node in EXAMPLES.items())


@pytest.mark.parametrize("node", EXAMPLES.values(), ids=lambda n: type(n).__name__)
def test_every_stage_handles_every_node_type(node: Node) -> None:
    assert from_json(to_json(node)) == node
    assert check(node, EVERYTHING, "") == node
    assert describe(node)
    check_stored(node)
    single = compile_segment(node, now="2026-03-31 12:00:00", profiles=["p"])
    assert single.sql.startswith(("SELECT", "WITH")) and single.tree is not None
    many = compile_segments([node, node], now="2026-03-31 12:00:00", profiles=None)
    assert "AS m1" in many.sql
    assert isinstance(holds(node, FACTS, NOW), bool)


@pytest.mark.parametrize("node", EXAMPLES.values(), ids=lambda n: type(n).__name__)
def test_every_tree_walk_handles_every_node_type(node: Node) -> None:
    assert all(type(child) in NODE_TYPES for child in children(node))
    assert referenced(node) <= {"vip"}
    everything_changed = Changes({"Order Completed", "Email Opened"}, True, True, False)
    assert isinstance(affected(node, everything_changed, {"vip"}), bool)
    assert affected(node, Changes(identity=True), set())


def test_the_walks_see_through_and_or_not() -> None:
    nested = Not(And((SeenOn("web"), Or((HasIdentifier("email"), InSegment("vip"))))))
    assert children(nested) == (nested.item,)
    assert referenced(nested) == {"vip"}
    assert affected(nested, Changes(), {"vip"})
    assert not affected(nested, Changes(), set())
    assert affected(nested, Changes(any_event=True), set())
    assert [type(n).__name__ for n in (EXAMPLES[Compare], EXAMPLES[InLookalike])
            if children(n)] == []  # fmt: skip


def test_the_interpreter_and_the_examples_agree_on_what_holds() -> None:
    held = {kind.__name__ for kind, node in EXAMPLES.items() if holds(node, FACTS, NOW)}
    assert held == {"Compare", "Did", "HasIdentifier", "Population", "SeenOn", "And", "Or",
                    "Not"}  # fmt: skip


def error_at(source: str, known: Catalogue) -> SegmentCheckError:
    with pytest.raises(SegmentCheckError) as caught:
        check(parse(source), known, source)
    return caught.value


def test_an_unknown_event_named_like_a_trait_value_is_pointed_at_itself() -> None:
    source = 'traits.plan = "Signup" and did "Signup"'
    error = error_at(source, Catalogue(traits={"plan"}))
    assert "unknown event 'Signup'" in str(error)
    assert (error.line, error.column) == (1, source.rindex('"Signup"') + 1) == (1, 32)
    assert str(error).endswith(" " * 31 + "^")


def test_an_unknown_property_is_pointed_at_where_it_is_used_not_where_it_first_appears() -> None:
    source = 'did "A" where properties.price > 1\n  and max(properties.price of "B") > 2'
    error = error_at(source, Catalogue(events={"A": {"price"}, "B": set()}))
    assert "unknown property 'price'" in str(error)
    assert (error.line, error.column) == (2, 11)


@pytest.mark.parametrize(("source", "column"), [
    ('traits.country = "FR" and computed.country exists', 27),
    ('seen on "web" or seen on web2', 26),
    ('has email and in segment "email"', 26),
    ('in segment "vip" or in lookalike "vip"', 34),
    ('traits.city = "Lyon" and has third_party "Lyon"', 42),
    ('did "web" and has web', 19),
])  # fmt: skip
def test_each_kind_of_name_is_pointed_at_where_it_is_written(source: str, column: int) -> None:
    known = Catalogue(traits={"country", "city"}, channels={"web"}, segments={"vip"},
                      identifier_types={"email"}, events={"web": set()})  # fmt: skip
    assert error_at(source, known).column == column


def test_trees_read_from_json_have_no_positions_and_still_compare_equal() -> None:
    parsed = parse('traits.plan = "a" and did "b"')
    assert isinstance(parsed, And) and parsed.items[0].at is not None
    assert from_json(to_json(parsed)) == parsed
    assert "at" not in str(to_json(parsed))
