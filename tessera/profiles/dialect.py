"""SQL trees for another engine: what DuckDB spells its own way, spelled for Spark SQL.

Computed traits (`computed.py`) and segments (`segments/compiler.py`) build one sqlglot
tree in DuckDB's terms; `for_dialect(tree, "spark")` rewrites the nodes sqlglot's Spark
generator does not translate (or translates into something Spark refuses or reads
differently), so `tree.sql(dialect="spark")` is valid Spark SQL with the same answers:

| DuckDB | Spark | why |
| --- | --- | --- |
| `TRY_CAST(x AS DOUBLE)` | `TRY_CAST` | sqlglot writes CAST: under ANSI mode it fails |
| `to_seconds(n)` | `make_interval(0, 0, 0, 0, 0, 0, n)` | Spark has no to_seconds |
| `from_json(c, '["VARCHAR"]')` | `from_json(c, 'array<string>')` | a DuckDB type Spark rejects |
| `json_extract_string(c, p)` | `get_json_object(c, p)` | the path as Spark reads it (`json_path`) |
| `isfinite(x)` | `NOT isnan(x) AND abs(x) <> 'Infinity'` | no isfinite |
| `epoch_us(t)` | `unix_micros(t)` | |
| `date_diff('day', a, b)` | `datediff(b, a)` | midnights crossed, as DuckDB counts |
| `arg_min(v, o)`, `arg_max` | `min_by(v, o) FILTER (v IS NOT NULL)` | DuckDB skips NULLs |
| `arg_min(v, o) FILTER (c)` | `min_by(v, o) FILTER (v IS NOT NULL AND c)` | one FILTER |
| `mode(v ORDER BY v)` | the sorted values' longest run | ties to the smallest value, as |
| | | DuckDB's ordered mode (`_SMALLEST_MODE`) |
| `round(x, n)` | `round(x * 10^n) / 10^n` | DuckDB rounds x * 10^n (2.675: 2.67), Spark |
| | | rounds the decimal text half up (2.68) |
| `isodow(t)` | `weekday(t) + 1` | sqlglot's `DAYOFWEEK(t) % 7 + 1` is not ISO's |
| `list[i]` (from 1) | `element_at(list, i)` | Spark's `[i]` counts from 0 |
| `list_has_any(a, b)` | `arrays_overlap(a, b)` | sqlglot writes `&&`, which Spark refuses |

Lists of products and their JSON items are built per engine where the spellings part
(`catalog/joins.py`: Spark reads a `products` array whole, as `get_json_object` unwraps a
one-element `[*]` answer), and an itemised trait's items are exploded and joined to the
catalogue on Spark instead of DuckDB's correlated subquery (`computed.py`).

Bound parameters stay parameters: `:name` for Spark's `spark.sql(text, args=...)`.
"""

from __future__ import annotations

from typing import Literal

import sqlglot
from sqlglot import exp

Dialect = Literal["duckdb", "spark"]
DIALECTS: tuple[Dialect, ...] = ("duckdb", "spark")


def json_path(name: str, dialect: Dialect = "duckdb") -> str:
    """A JSON path to one key. DuckDB reads `$."a key"` (any name, escaped); Spark reads
    `$['a key']`, which cannot hold a `'` (such a key is unreachable there)."""
    if dialect == "spark":
        return "$['" + name + "']"
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def for_dialect(tree: exp.Expr, dialect: Dialect) -> exp.Expr:
    """The tree to generate for `dialect` (a rewritten copy for Spark)."""
    if dialect == "duckdb":
        return tree
    return tree.transform(_spark)


def _inner(node: exp.Expr) -> exp.Expr:
    """An argument moved into a rewritten node: rewritten itself (the walk does not
    visit the nodes a rewrite builds)."""
    return node.copy().transform(_spark)


def _name(node: exp.Expr) -> str:
    return str(node.this).lower() if isinstance(node, exp.Anonymous) else ""


def _call(name: str, *arguments: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(arguments))


def _by(node: exp.ArgMin | exp.ArgMax, condition: exp.Expr | None = None) -> exp.Expr:
    """`min_by`/`max_by` over the rows with a value (DuckDB's arg_min skips NULLs), and
    `condition`'s."""
    function = "min_by" if isinstance(node, exp.ArgMin) else "max_by"
    value = _inner(node.this)
    call = _call(function, value.copy(), _inner(node.expression))
    present: exp.Expr = exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))
    if condition is not None:
        present = exp.and_(present, exp.Paren(this=condition))
    return exp.Filter(this=call, expression=exp.Where(this=present))


#: The most frequent value, ties to the smallest, NULLs skipped (DuckDB's `mode(v ORDER BY
#: v)`), in Spark 3.5 and 4: the values sorted, then one pass keeping the longest run (the
#: first of equal runs, so the smallest). Spark 4's `mode(v, true)` says the same in one
#: call, but 3.5's `mode` takes no second argument and breaks ties as it finds them.
_SMALLEST_MODE = """aggregate(array_sort(collect_list(__value__)),
    named_struct('v', try_element_at(array_sort(collect_list(__value__)), 1), 'n', 0,
                 'best', try_element_at(array_sort(collect_list(__value__)), 1), 'most', 0),
    (run, x) -> named_struct('v', x, 'n', IF(run.v = x, run.n + 1, 1),
        'best', IF(IF(run.v = x, run.n + 1, 1) > run.most, x, run.best),
        'most', greatest(IF(run.v = x, run.n + 1, 1), run.most)),
    run -> run.best)"""


_SMALLEST_MODE_TREE = sqlglot.parse_one(_SMALLEST_MODE, read="spark")


def _smallest_mode(value: exp.Expr) -> exp.Expr:
    def put(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.name == "__value__":
            return value.copy()
        return node

    return _SMALLEST_MODE_TREE.transform(put)  # transform works on a copy


def _is_list_index(node: exp.Bracket) -> bool:
    """A list literal's element by position (not a struct's or a map's by key)."""
    index = node.expressions[0] if len(node.expressions) == 1 else None
    return isinstance(node.this, exp.Array) and not (
        index is None or (isinstance(index, exp.Literal) and index.is_string)
    )


def _spark(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.TryCast):
        node.set("safe", True)
        return node
    if isinstance(node, exp.FromJson):
        return _call("from_json", _inner(node.this), exp.Literal.string("array<string>"))
    if isinstance(node, exp.Filter) and isinstance(node.this, exp.ArgMin | exp.ArgMax):
        # Spark takes one FILTER per aggregate: the NULL test joins the one written.
        return _by(node.this, _inner(node.expression.this))
    if isinstance(node, exp.ArgMin | exp.ArgMax):
        return _by(node)
    if isinstance(node, exp.Round) and isinstance(node.args.get("decimals"), exp.Literal):
        scale = exp.Literal.number(10 ** int(node.args["decimals"].this))
        scaled = exp.Round(this=exp.Mul(this=_inner(node.this), expression=scale))
        return exp.Paren(this=exp.Div(this=scaled, expression=scale.copy()))
    if isinstance(node, exp.DayOfWeekIso):
        weekday = _call("weekday", _inner(node.this))
        return exp.Paren(this=exp.Add(this=weekday, expression=exp.Literal.number(1)))
    if isinstance(node, exp.Bracket) and _is_list_index(node):
        position = exp.Cast(this=_inner(node.expressions[0]), to=exp.DataType.build("INT"))
        return _call("element_at", _inner(node.this), position)
    if isinstance(node, exp.ArrayOverlaps):
        return _call("arrays_overlap", _inner(node.this), _inner(node.expression))
    if isinstance(node, exp.DateDiff) and node.text("unit").lower() in ("day", ""):
        # Spark's DATEDIFF(DAY, a, b) counts whole 24-hour periods; DuckDB's counts the
        # midnights crossed, as Spark's two-argument datediff(end, start) does.
        return _call("datediff", _inner(node.this), _inner(node.expression))
    if isinstance(node, exp.Mode) and isinstance(node.this, exp.Order):
        return _smallest_mode(_inner(node.this.this))
    name = _name(node)
    arguments = [_inner(a) for a in node.expressions] if isinstance(node, exp.Anonymous) else []
    if name == "to_seconds":
        zeros = [exp.Literal.number(0) for _ in range(6)]
        return _call("make_interval", *zeros, arguments[0])
    if name == "json_extract_string":
        return _call("get_json_object", *arguments)
    if name == "isfinite":
        value = arguments[0]
        infinite = exp.Cast(this=exp.Literal.string("Infinity"), to=exp.DataType.build("DOUBLE"))
        return exp.Paren(
            this=exp.and_(
                exp.Not(this=_call("isnan", value.copy())),
                exp.NEQ(this=exp.Abs(this=value.copy()), expression=infinite),
            )
        )
    if name == "epoch_us":
        return _call("unix_micros", *arguments)
    if name == "date_diff" and len(arguments) == 3:
        return _call("datediff", arguments[2], arguments[1])
    return node
