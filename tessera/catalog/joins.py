"""How an event names products, as SQL trees: the ids in `properties.<product_id>` and in
each item of `properties.products` (Segment's e-commerce spec: Order Completed, Cart
Viewed... carry a `products` array). The builders take the property's name as an argument
(`product_id` by default; no setting passes another yet).

Segments and computed traits build on these expressions; the values a user wrote are bound
parameters, the property name a checked identifier.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

DEFAULT_PROPERTY = "product_id"
#: the product fields a condition or a trait may read
READABLE = ("product_id", "name", "category", "brand", "price", "currency", "available")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_property(name: str) -> str:
    """The product id property as a JSON path piece: a plain name (the setting's pattern)."""
    if not _NAME.match(name):
        raise ValueError(f"product id property {name!r} must be a plain name")
    return name


def product_ids(properties: exp.Expr, key: str = DEFAULT_PROPERTY) -> exp.Expr:
    """`VARCHAR[]`: the product ids an event's properties name, the single one first, then
    those of `products[]` (none: an empty list). Numbers are read as their text."""
    check_property(key)
    single = exp.func(
        "json_extract_string", properties, exp.Literal.string(f'$."{key}"'), dialect="duckdb"
    )
    many = exp.func(
        "json_extract_string",
        properties.copy(),
        exp.Literal.string(f'$."products"[*]."{key}"'),
        dialect="duckdb",
    )
    one = exp.Case(
        ifs=[
            exp.If(
                this=exp.Not(this=exp.Is(this=single, expression=exp.Null())),
                true=exp.Array(expressions=[single.copy()]),
            )
        ],
        default=exp.Cast(this=exp.Array(expressions=[]), to=exp.DataType.build("VARCHAR[]")),
    )
    listed = exp.func(
        "list_filter",
        exp.func(
            "coalesce",
            exp.TryCast(this=many, to=exp.DataType.build("VARCHAR[]")),
            exp.Cast(this=exp.Array(expressions=[]), to=exp.DataType.build("VARCHAR[]")),
        ),
        exp.Lambda(
            this=exp.Not(this=exp.Is(this=exp.to_identifier("x"), expression=exp.Null())),
            expressions=[exp.to_identifier("x")],
        ),
    )
    return exp.func("list_concat", one, listed)


def event_items(properties: exp.Expr, key: str = DEFAULT_PROPERTY) -> exp.Expr:
    """`JSON[]`: the product items an event's properties name, as JSON objects with the
    id under `key` (and `price`, `quantity` when the event gives them): the event itself
    when it names a product, then each item of `products[]`."""
    check_property(key)
    single = exp.func(
        "json_extract_string", properties, exp.Literal.string(f'$."{key}"'), dialect="duckdb"
    )
    own = exp.func(
        "json_object",
        exp.Literal.string(key),
        single.copy(),
        exp.Literal.string("price"),
        _json_at(properties, "price"),
        exp.Literal.string("quantity"),
        _json_at(properties, "quantity"),
    )
    empty = exp.Cast(this=exp.Array(expressions=[]), to=exp.DataType.build("JSON[]"))
    one = exp.Case(
        ifs=[
            exp.If(
                this=exp.Not(this=exp.Is(this=single, expression=exp.Null())),
                true=exp.Array(expressions=[own]),
            )
        ],
        default=empty,
    )
    listed = exp.func(
        "coalesce",
        exp.TryCast(
            this=exp.func(
                "json_extract", properties.copy(), exp.Literal.string('$."products"[*]')
            ),
            to=exp.DataType.build("JSON[]"),
        ),
        empty.copy(),
    )
    return exp.func("list_concat", one, listed)


def _json_at(properties: exp.Expr, name: str) -> exp.Expr:
    return exp.func("json_extract", properties.copy(), exp.Literal.string(f'$."{name}"'))


def category_prefix(category: exp.Expr, level: int | None) -> exp.Expr:
    """The first `level` levels of a category path ('Sport > Running > Shoes', 1 → 'Sport');
    the whole path without a level."""
    if level is None:
        return category
    parts = exp.func("string_split", category, exp.Literal.string(" > "))
    head = exp.func("list_slice", parts, exp.Literal.number(1), exp.Literal.number(int(level)))
    return exp.func("array_to_string", head, exp.Literal.string(" > "))


def product_item_values(
    items: exp.Expr, field: str, level: int | None, key: str = DEFAULT_PROPERTY
) -> exp.Expr:
    """`STRUCT(k VARCHAR, amount DOUBLE)[]` in the items' order: each item's product
    `field` from the catalogue (NULL for a product it does not hold; the id itself for
    `product_id`), and its amount: the item's price (else the catalogue's) times its
    quantity (else 1), 0 when no price is known. A correlated subquery: DuckDB runs it
    as one join."""
    if field not in READABLE:
        raise ValueError(f"unknown product field {field!r}")
    item = exp.column("i")
    item_id = exp.func("json_extract_string", item.copy(), exp.Literal.string(f'$."{key}"'))
    if field == "product_id":
        value: exp.Expr = item_id.copy()
    else:
        value = exp.Cast(this=exp.column(field, "pr"), to=exp.DataType.build("VARCHAR"))
        if field == "category":
            value = category_prefix(value, level)
    price = exp.func(
        "coalesce",
        exp.TryCast(
            this=exp.func("json_extract_string", item.copy(), exp.Literal.string("$.price")),
            to=exp.DataType.build("DOUBLE"),
        ),
        exp.column("price", "pr"),
    )
    quantity = exp.func(
        "coalesce",
        exp.TryCast(
            this=exp.func("json_extract_string", item.copy(), exp.Literal.string("$.quantity")),
            to=exp.DataType.build("DOUBLE"),
        ),
        exp.Literal.number(1),
    )
    amount = exp.func(
        "coalesce", exp.Mul(this=price, expression=quantity), exp.Literal.number(0)
    )
    pair = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier("k"), expression=value),
            exp.PropertyEQ(
                this=exp.to_identifier("amount"),
                expression=exp.Cast(this=amount, to=exp.DataType.build("DOUBLE")),
            ),
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
