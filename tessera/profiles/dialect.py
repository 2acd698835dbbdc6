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
| `mode(v ORDER BY v)` | `mode(v, true)` | ties to the smallest value, as DuckDB's ordered mode |

Bound parameters stay parameters: `:name` for Spark's `spark.sql(text, args=...)`.
"""

from __future__ import annotations

from typing import Literal

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


def _spark(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.TryCast):
        node.set("safe", True)
        return node
    if isinstance(node, exp.FromJson):
        return _call("from_json", _inner(node.this), exp.Literal.string("array<string>"))
    if isinstance(node, exp.ArgMin | exp.ArgMax):
        function = "min_by" if isinstance(node, exp.ArgMin) else "max_by"
        value = _inner(node.this)
        call = _call(function, value.copy(), _inner(node.expression))
        present = exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))
        return exp.Filter(this=call, expression=exp.Where(this=present))
    if isinstance(node, exp.DateDiff) and node.text("unit").lower() in ("day", ""):
        # Spark's DATEDIFF(DAY, a, b) counts whole 24-hour periods; DuckDB's counts the
        # midnights crossed, as Spark's two-argument datediff(end, start) does.
        return _call("datediff", _inner(node.this), _inner(node.expression))
    if isinstance(node, exp.Mode) and isinstance(node.this, exp.Order):
        return _call("mode", _inner(node.this.this), exp.true())
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
