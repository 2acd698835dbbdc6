"""How an event names products, as SQL trees: the ids in its properties and in each item
of `properties.products` (Segment's e-commerce spec: Order Completed, Cart Viewed... carry a
`products` array), read through `keys.ProductKeys` (TESSERA_PRODUCT_ID_PROPERTIES: the
property paths tried in order, `product_id` by default).

Segments and computed traits build on these expressions; the values a user wrote are bound
parameters, the property name a checked identifier. Each takes the engine it is for
(`profiles/dialect.py`): Spark reads the `products` array whole (its `get_json_object`
answers a one-element `[*]` path without the brackets) and has its own list functions; an
item there is a struct, not a JSON object, and the catalogue is joined to the exploded
items (`item_key_and_amount` is the one rule for what an item counts under and for).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import sqlglot
from sqlglot import exp

from tessera.catalog.keys import ProductKeys

#: the engine a tree is for: `profiles.dialect.Dialect` (the catalogue sits below profiles)
Dialect = Literal["duckdb", "spark"]

DEFAULT_KEYS = ProductKeys()

#: the product fields a condition or a trait may read
READABLE = ("product_id", "name", "category", "brand", "price", "currency", "available")
_VARCHARS = exp.DataType.build("VARCHAR[]")
_JSONS = exp.DataType.build("JSON[]")


def _products_array(properties: exp.Expr, dialect: Dialect = "duckdb") -> exp.Expr:
    """`JSON[]`: the items of `properties.products` (empty when it is not an array); on
    Spark `ARRAY<STRING>`, each item's JSON text."""
    if dialect == "spark":
        return exp.func(
            "coalesce",
            _call(
                "from_json",
                _call("get_json_object", properties, exp.Literal.string("$.products")),
                exp.Literal.string("array<string>"),
            ),
            exp.Cast(this=exp.Array(expressions=[]), to=exp.DataType.build("ARRAY<STRING>")),
        )
    return exp.func(
        "coalesce",
        exp.TryCast(
            this=exp.func("json_extract", properties, exp.Literal.string('$."products"[*]')),
            to=_JSONS,
        ),
        exp.Cast(this=exp.Array(expressions=[]), to=_JSONS),
    )


def _not_null(name: str) -> exp.Lambda:
    return exp.Lambda(
        this=exp.Not(this=exp.Is(this=exp.to_identifier(name), expression=exp.Null())),
        expressions=[exp.to_identifier(name)],
    )


def _call(name: str, *arguments: exp.Expr) -> exp.Expr:
    """A function under its Spark name, left as written by `for_dialect`."""
    return exp.Anonymous(this=name, expressions=list(arguments))


def _lambda(name: str, body: Callable[[exp.Expr], exp.Expr]) -> exp.Lambda:
    return exp.Lambda(this=body(exp.to_identifier(name)), expressions=[exp.to_identifier(name)])


def product_ids(
    properties: exp.Expr, keys: ProductKeys = DEFAULT_KEYS, dialect: Dialect = "duckdb"
) -> exp.Expr:
    """`VARCHAR[]`: the product ids an event's properties name, the event's own first,
    then those of `products[]` (none: an empty list), each read through `keys`. Numbers
    are read as their text."""
    single = keys.sql_of(properties)
    if dialect == "spark":
        own = _call("filter", _call("array", single), _lambda("x", _present))
        ids = _call("transform", _products_array(properties.copy(), dialect),
                    _lambda("item", keys.sql_of))  # fmt: skip
        return _call("concat", own, _call("filter", ids, _lambda("x", _present)))
    one = exp.Case(
        ifs=[
            exp.If(
                this=exp.Not(this=exp.Is(this=single, expression=exp.Null())),
                true=exp.Array(expressions=[single.copy()]),
            )
        ],
        default=exp.Cast(this=exp.Array(expressions=[]), to=_VARCHARS),
    )
    if len(keys.paths) == 1:
        # One path (the default): the items' ids in one JSON path call, no per-item lambda.
        inner = ".".join(f'"{name}"' for name in keys.paths[0].split("."))
        many = exp.func(
            "json_extract_string",
            properties.copy(),
            exp.Literal.string(f'$."products"[*].{inner}'),
            dialect="duckdb",
        )
        ids = exp.func(
            "coalesce",
            exp.TryCast(this=many, to=_VARCHARS),
            exp.Cast(this=exp.Array(expressions=[]), to=_VARCHARS),
        )
    else:
        ids = exp.func(
            "list_transform",
            _products_array(properties.copy()),
            exp.Lambda(
                this=keys.sql_of(exp.to_identifier("item")),
                expressions=[exp.to_identifier("item")],
            ),
        )
    listed = exp.func("list_filter", ids, _not_null("x"))
    return exp.func("list_concat", one, listed)


def _present(value: exp.Expr) -> exp.Expr:
    return exp.Not(this=exp.Is(this=value, expression=exp.Null()))


def event_items(
    properties: exp.Expr, keys: ProductKeys = DEFAULT_KEYS, dialect: Dialect = "duckdb"
) -> exp.Expr:
    """`JSON[]`: the product items an event's properties name, each as a JSON object
    `{"product_id", "price", "quantity"}` (the id read through `keys`; price and quantity
    when the item gives them): the event itself when it names a product, then each item of
    `products[]` that names one. On Spark each item is a struct of the same three fields
    (price and quantity as the text `json_extract_string` reads)."""
    if dialect == "spark":
        return _spark_event_items(properties, keys)
    single = keys.sql_of(properties)
    own = _item(single.copy(), properties)
    empty = exp.Cast(this=exp.Array(expressions=[]), to=_JSONS)
    one = exp.Case(
        ifs=[
            exp.If(
                this=exp.Not(this=exp.Is(this=single, expression=exp.Null())),
                true=exp.Array(expressions=[own]),
            )
        ],
        default=empty,
    )
    item = exp.to_identifier("item")
    named = exp.func(
        "list_filter",
        _products_array(properties.copy()),
        exp.Lambda(
            this=exp.Not(this=exp.Is(this=keys.sql_of(item.copy()), expression=exp.Null())),
            expressions=[item.copy()],
        ),
    )
    listed = exp.func(
        "list_transform",
        named,
        exp.Lambda(
            this=_item(keys.sql_of(item.copy()), item.copy()),
            expressions=[item.copy()],
        ),
    )
    return exp.func("list_concat", one, listed)


def _spark_event_items(properties: exp.Expr, keys: ProductKeys) -> exp.Expr:
    def item(source: exp.Expr) -> exp.Expr:
        fields: list[exp.Expr] = [exp.Literal.string("product_id"), keys.sql_of(source.copy())]
        for name in ("price", "quantity"):
            path = exp.Literal.string(f"$.{name}")
            fields += [exp.Literal.string(name), _call("get_json_object", source.copy(), path)]
        return _call("named_struct", *fields)

    def named(value: exp.Expr) -> exp.Expr:
        return _present(exp.Dot(this=value, expression=exp.to_identifier("product_id")))

    own = _call("filter", _call("array", item(properties)), _lambda("x", named))
    listed = _call("transform", _products_array(properties.copy(), "spark"), _lambda("item", item))
    return _call("concat", own, _call("filter", listed, _lambda("x", named)))


def _item(product_id: exp.Expr, source: exp.Expr) -> exp.Expr:
    return exp.func(
        "json_object",
        exp.Literal.string("product_id"),
        product_id,
        exp.Literal.string("price"),
        _json_at(source, "price"),
        exp.Literal.string("quantity"),
        _json_at(source, "quantity"),
    )


def _json_at(properties: exp.Expr, name: str) -> exp.Expr:
    return exp.func("json_extract", properties.copy(), exp.Literal.string(f'$."{name}"'))


def category_prefix(category: exp.Expr, level: int | None, dialect: Dialect = "duckdb") -> exp.Expr:
    """The first `level` levels of a category path ('Sport > Running > Shoes', 1 → 'Sport');
    the whole path without a level."""
    if level is None:
        return category
    if dialect == "spark":
        # Spark's split takes a pattern: ' > ' holds no character special to one.
        parts = _call("split", category, exp.Literal.string(" > "))
        head = _call("slice", parts, exp.Literal.number(1), exp.Literal.number(int(level)))
        return _call("array_join", head, exp.Literal.string(" > "))
    parts = exp.func("string_split", category, exp.Literal.string(" > "))
    head = exp.func("list_slice", parts, exp.Literal.number(1), exp.Literal.number(int(level)))
    return exp.func("array_to_string", head, exp.Literal.string(" > "))


def item_key_and_amount(
    item_id: exp.Expr,
    price: exp.Expr,
    quantity: exp.Expr,
    field: str,
    level: int | None,
    dialect: Dialect = "duckdb",
) -> tuple[exp.Expr, exp.Expr]:
    """What one item counts under and for, beside its catalogue row `pr`: the product
    `field` (NULL for a product the catalogue does not hold; the id itself for
    `product_id`), and the amount: the item's `price` text (else the catalogue's) times
    its `quantity` text (else 1), 0 when no price is known."""
    if field not in READABLE:
        raise ValueError(f"unknown product field {field!r}")
    if field == "product_id":
        value: exp.Expr = item_id
    else:
        value = exp.Cast(this=exp.column(field, "pr"), to=exp.DataType.build("VARCHAR"))
        if field == "category":
            value = category_prefix(value, level, dialect)
    price = exp.func(
        "coalesce",
        exp.TryCast(this=price, to=exp.DataType.build("DOUBLE")),
        exp.column("price", "pr"),
    )
    quantity = exp.func(
        "coalesce",
        exp.TryCast(this=quantity, to=exp.DataType.build("DOUBLE")),
        exp.Literal.number(1),
    )
    amount = exp.func("coalesce", exp.Mul(this=price, expression=quantity), exp.Literal.number(0))
    return value, exp.Cast(this=amount, to=exp.DataType.build("DOUBLE"))


def product_item_values(items: exp.Expr, field: str, level: int | None) -> exp.Expr:
    """`STRUCT(k VARCHAR, amount DOUBLE)[]` in the items' order: each item's key and
    amount (`item_key_and_amount`). A correlated subquery: DuckDB runs it as one join
    (Spark explodes the items and joins them instead: `computed.py`)."""
    item = exp.column("i")
    item_id = exp.func("json_extract_string", item.copy(), exp.Literal.string('$."product_id"'))
    value, amount = item_key_and_amount(
        item_id.copy(),
        exp.func("json_extract_string", item.copy(), exp.Literal.string("$.price")),
        exp.func("json_extract_string", item.copy(), exp.Literal.string("$.quantity")),
        field,
        level,
    )
    pair = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier("k"), expression=value),
            exp.PropertyEQ(this=exp.to_identifier("amount"), expression=amount),
        ]
    )
    listed = exp.ArrayAgg(
        this=exp.Order(this=pair, expressions=[exp.Ordered(this=exp.column("n"))])
    )
    spread = sqlglot.select(
        exp.Unnest(expressions=[items]).as_("i"),
        exp.func("generate_subscripts", items.copy(), exp.Literal.number(1)).as_("n"),
    )
    query = (
        sqlglot.select(listed)
        .from_(spread.subquery("its"))
        .join(
            "products AS pr",
            on=exp.EQ(this=exp.column("product_id", "pr"), expression=item_id.copy()),
            join_type="LEFT",
        )
    )
    return query.subquery()
