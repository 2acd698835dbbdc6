"""Tree → SQL: one query that returns the profile_ids in a segment.

Each event condition becomes a CTE aggregating the events of live profiles (one pass per
condition, grouped by profile), joined to `profile_summaries`; trait conditions read the
profile's traits JSON. Every value, name and path is a bound parameter; the fragments are
fixed templates, and the result is parsed into a sqlglot tree so it can be transpiled.
Predicates are made NULL-free (`coalesce(..., false)`) so `not` means what it says.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlglot
from sqlglot import exp

from tessera.segments.errors import SegmentTooComplex
from tessera.segments.literals import MAX_DEPTH
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
    Value,
    Window,
    from_json,
    to_json,
)

# Only merged profiles need redirecting: joining that small set instead of every profile
# made the probe of 10 million events cheap (benchmarks/segments.py).
_EVENTS_OF_PROFILES = (
    "SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.type, e.event, "
    "e.timestamp, e.properties FROM events e JOIN event_profiles ep ON ep.seq = e.seq "
    "LEFT JOIN (SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL) p "
    "ON p.profile_id = ep.profile_id"
)
#: Parts joined flat by and/or before they are grouped in balanced parentheses.
_FLAT = 16
_SQL_AGGREGATE = {"count": "count(*)", "sum": "sum({v})", "avg": "avg({v})",
                  "min": "min({v})", "max": "max({v})"}  # fmt: skip


@dataclass
class CompiledSegment:
    sql: str
    parameters: dict[str, Any]
    tree: Any = field(repr=False)  # a sqlglot expression: .sql(dialect="spark") etc.


@dataclass
class _Builder:
    parameters: dict[str, Any] = field(default_factory=dict)
    #: one aggregate column per event condition, all computed in a single pass
    aggregates: list[str] = field(default_factory=list)
    #: each aggregate's condition: rows matching none of them are dropped before grouping
    conditions: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    profiles: list[str] | None = None

    def bind(self, value: Any) -> str:
        key = f"p{len(self.parameters)}"
        self.parameters[key] = value
        return f"${key}"


def compile_segment(node: Node, *, now: str, profiles: list[str] | None = None) -> CompiledSegment:
    """SQL selecting the profile_ids in the segment at `now` (ISO time).

    `profiles` restricts evaluation to those profiles (and the ids merged into them)."""
    builder = _Builder(profiles=profiles)
    builder.parameters["now"] = now
    predicate = _predicate(node, builder)
    return _assemble(builder, "s.profile_id", predicate)


def compile_segments(
    nodes: list[Node], *, now: str, profiles: list[str] | None
) -> CompiledSegment:
    """Many segments at once for some profiles (or, with None, everyone): `profile_id, m0,
    m1, ...` (one boolean per segment). Streaming re-evaluation runs this once per pipeline
    batch, so 50 segments cost one pass over the touched profiles' events, not fifty.

    The text depends only on the trees (the clock and the profiles are parameters), and
    building it through sqlglot costs more than running it on a small batch, so it is
    cached per set of trees."""
    template = _compiled_many(
        orjson.dumps([to_json(node) for node in nodes]), restricted=profiles is not None
    )
    parameters = dict(template.parameters)
    if "now" in parameters:
        parameters["now"] = now
    if profiles is not None:
        parameters["profiles"] = profiles
    return CompiledSegment(template.sql, parameters, template.tree)


@functools.lru_cache(maxsize=32)
def _compiled_many(trees: bytes, *, restricted: bool) -> CompiledSegment:
    nodes = [from_json(data) for data in orjson.loads(trees)]
    builder = _Builder(profiles=[] if restricted else None)
    builder.parameters["now"] = ""
    columns = [f"({_predicate(node, builder)}) AS m{i}" for i, node in enumerate(nodes)]
    return _assemble(builder, ", ".join(["s.profile_id", *columns]), "true")


def _assemble(builder: _Builder, select: str, predicate: str) -> CompiledSegment:
    restriction = ""
    if builder.profiles is not None:
        builder.parameters["profiles"] = builder.profiles
        # On ep.profile_id itself (the touched ids and those merged into them), so the
        # filter reaches the event_profiles scan before the join with the events.
        restriction = (
            " WHERE ep.profile_id IN (SELECT profile_id FROM profiles WHERE "
            "profile_id IN (SELECT unnest($profiles)) "
            "OR merged_into IN (SELECT unnest($profiles)))"
        )
    with_clause = ""
    if builder.aggregates:
        # Every event condition in one pass over the events, each with its own FILTER;
        # rows that no condition wants are dropped before the grouping.
        wanted = _joined("OR", [f"({c})" for c in builder.conditions])
        with_clause = (
            f"WITH ev AS ({_EVENTS_OF_PROFILES}{restriction}), "
            f"agg AS (SELECT profile_id, {', '.join(builder.aggregates)} FROM ev "
            f"WHERE type = 'track' AND {wanted} GROUP BY profile_id) "
        )
        builder.joins.insert(0, "LEFT JOIN agg ON agg.profile_id = s.profile_id")
    where = predicate
    if builder.profiles is not None:
        where = f"s.profile_id IN (SELECT unnest($profiles)) AND ({predicate})"
    sql = (
        f"{with_clause}SELECT {select} FROM profile_summaries s "
        f"{' '.join(builder.joins)} WHERE {where}"
    )
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        text = tree.sql(dialect="duckdb")
    except RecursionError:
        # The parser refuses deeper segments (literals.MAX_DEPTH) long before this; a tree
        # stored by an older version may still be one.
        raise SegmentTooComplex(
            f"the segment is nested too deep to compile; keep and/or/not within "
            f"{MAX_DEPTH} levels",
            line=None, column=None, source=None,
        ) from None
    # DuckDB refuses parameters a query does not use ($now when nothing reads the clock).
    used = {k: v for k, v in builder.parameters.items() if f"${k}" in text}
    return CompiledSegment(text, used, tree)


def _predicate(node: Node, b: _Builder) -> str:
    if isinstance(node, And):
        return _joined("AND", [_predicate(i, b) for i in node.items])
    if isinstance(node, Or):
        return _joined("OR", [_predicate(i, b) for i in node.items])
    if isinstance(node, Not):
        return f"(NOT {_predicate(node.item, b)})"
    if isinstance(node, Compare):
        return f"coalesce({_compare(node, b)}, false)"
    if isinstance(node, Did):
        column = _event_column(b, "count(*)", node.event, node.window)
        return f"(coalesce({column}, 0) > 0)"
    if isinstance(node, Aggregate):
        value = ""
        if node.property:
            value = f"TRY_CAST(json_extract_string(properties, {_path(node.property)}) AS DOUBLE)"
        column = _event_column(
            b, _SQL_AGGREGATE[node.function].format(v=value), node.event, node.window
        )
        current = f"coalesce({column}, 0)" if node.function in ("count", "sum") else column
        return f"coalesce({current} {_op(node.op)} {b.bind(node.value)}, false)"
    if isinstance(node, HasIdentifier):
        return (
            "s.profile_id IN (SELECT coalesce(p.merged_into, i.profile_id) FROM identities i "
            "LEFT JOIN profiles p ON p.profile_id = i.profile_id "
            f"WHERE i.type = {b.bind(node.type)})"
        )
    if isinstance(node, HasThirdParty):
        # Through any identifier of the profile (so a cookie's third-party segments follow
        # it into the customer profile once it is linked), unexpired, the named node or
        # any node under it in its taxonomy.
        reference = b.bind(node.reference)
        return (
            "s.profile_id IN (SELECT coalesce(p.merged_into, i.profile_id) "
            "FROM third_party_memberships t JOIN identities i ON i.type = t.identifier_type "
            "AND i.value = t.identifier_value LEFT JOIN profiles p ON p.profile_id = i.profile_id "
            "JOIN taxonomy_closure c ON c.taxonomy = t.taxonomy AND c.descendant = t.segment_id "
            "JOIN taxonomy_nodes n ON n.taxonomy = c.taxonomy AND n.id = c.ancestor "
            f"WHERE (n.id = {reference} OR lower(n.path) = lower({reference})) "
            "AND t.expires_at > CAST($now AS TIMESTAMP))"
        )
    if isinstance(node, Population):
        # Known: some identifier that is not a cookie, device, ad or synced id.
        known = (
            "s.profile_id IN (SELECT coalesce(p.merged_into, i.profile_id) FROM identities i "
            "LEFT JOIN profiles p ON p.profile_id = i.profile_id WHERE i.type NOT IN "
            "('anonymous_id', 'cookie_id', 'device_id', 'advertising_id') "
            "AND NOT starts_with(i.type, 'sync_'))"
        )
        return known if node.who == "known" else f"(NOT {known})"
    if isinstance(node, SeenOn):
        channel = b.bind(node.channel)
        return f"coalesce(list_contains(from_json(s.channels, '[\"VARCHAR\"]'), {channel}), false)"
    if isinstance(node, InSegment):
        return (
            "s.profile_id IN (SELECT m.profile_id FROM segment_members m JOIN segments g "
            f"ON g.id = m.segment_id WHERE g.name = {b.bind(node.name)} AND m.left_at IS NULL)"
        )
    if isinstance(node, InLookalike):
        return (
            "s.profile_id IN (SELECT coalesce(p.merged_into, l.profile_id) FROM "
            "lookalike_members l JOIN lookalikes k ON k.name = l.lookalike "
            "LEFT JOIN profiles p ON p.profile_id = l.profile_id "
            f"WHERE l.lookalike = {b.bind(node.name)} AND l.rank <= k.reach)"
        )
    raise TypeError(f"cannot compile {node!r}")


def _joined(operator: str, parts: list[str]) -> str:
    """`(a AND b AND ...)`, grouped into a balanced tree of parentheses past _FLAT parts:
    DuckDB binds a long flat chain as a chain as deep as it is long and stops at an
    expression depth of 1,000 (200 conditions of 50 segments in one query reach it)."""
    if len(parts) <= _FLAT:
        return "(" + f" {operator} ".join(parts) + ")"
    half = len(parts) // 2
    return f"({_joined(operator, parts[:half])} {operator} {_joined(operator, parts[half:])})"


def _compare(node: Compare, b: _Builder) -> str:
    if node.source == "computed":
        alias = f"c{len(b.joins)}"
        b.joins.append(
            f"LEFT JOIN computed_traits {alias} ON {alias}.profile_id = s.profile_id "
            f"AND {alias}.name = {b.bind(node.name)}"
        )
        raw, text = f"{alias}.value", f"json_extract_string({alias}.value, '$')"
        if node.op == "exists":
            return f"({raw} IS NOT NULL AND {raw} <> 'null')"
    else:
        path = _path(node.name)
        raw, text = f"json_extract(s.traits, {path})", f"json_extract_string(s.traits, {path})"
        if node.op == "exists":
            return f"({raw} IS NOT NULL AND {raw} <> 'null')"
    return _value_test(text, node.op, node.value, b)


def _value_test(text: str, op: str, value: Value | tuple[Value, ...] | None, b: _Builder) -> str:
    if op == "contains":
        return f"contains({text}, {b.bind(value)})"
    if op == "starts_with":
        return f"starts_with({text}, {b.bind(value)})"
    if op == "in":
        assert isinstance(value, tuple)
        return _joined("OR", [_value_test(text, "=", v, b) for v in value])
    if isinstance(value, bool):
        return f"lower({text}) {_op(op)} {b.bind(str(value).lower())}"
    if isinstance(value, float | int):
        return f"TRY_CAST({text} AS DOUBLE) {_op(op)} {b.bind(float(value))}"
    if isinstance(value, RelativeTime):
        return (
            f"TRY_CAST({text} AS TIMESTAMP) {_op(op)} "
            f"(CAST($now AS TIMESTAMP) - to_seconds({b.bind(value.seconds)}))"
        )
    return f"{text} {_op(op)} {b.bind(value)}"


def _event_column(b: _Builder, aggregate: str, event: EventRef, window: Window | None) -> str:
    """Add `aggregate FILTER (WHERE this event, its filters, its window)` to the single
    aggregate pass; returns the column to compare."""
    column = f"v{len(b.aggregates)}"
    conditions = [f"event = {b.bind(event.name)}"]
    conditions += [_filter(f, b) for f in event.filters]
    if window is not None and window.seconds is not None:
        seconds = b.bind(window.seconds)
        conditions.append(f"timestamp >= CAST($now AS TIMESTAMP) - to_seconds({seconds})")
        conditions.append("timestamp <= CAST($now AS TIMESTAMP)")
    elif window is not None:
        conditions.append(f"timestamp >= CAST({b.bind(window.start)} AS TIMESTAMP)")
        conditions.append(f"timestamp < CAST({b.bind(window.end)} AS TIMESTAMP)")
    b.conditions.append(" AND ".join(conditions))
    b.aggregates.append(f"{aggregate} FILTER (WHERE {b.conditions[-1]}) AS {column}")
    return f"agg.{column}"


def _filter(item: Filter, b: _Builder) -> str:
    text = f"json_extract_string(properties, {_path(item.property)})"
    return f"coalesce({_value_test(text, item.op, item.value, b)}, false)"


def _op(op: str) -> str:
    return {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[op]


def _path(name: str | None) -> str:
    """A JSON path as a SQL string literal. Not a bound parameter on purpose: DuckDB
    parses a constant path once per query, but a parameter's on every row (measured: 2.5x
    slower trait filters). It is safe to inline: the grammar allows only names made of
    letters, digits and '_', and the literal is quoted by sqlglot."""
    assert name is not None and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), name
    return exp.Literal.string(f'$."{name}"').sql(dialect="duckdb")
