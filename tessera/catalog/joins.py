"""How an event names products, as SQL trees: the ids in its properties and in each item
of `properties.products` (Segment's e-commerce spec: Order Completed, Cart Viewed... carry a
`products` array), read through `keys.ProductKeys` (TESSERA_PRODUCT_ID_PROPERTIES: the
property paths tried in order, `product_id` by default).

Segments and computed traits build on these expressions; the values a user wrote are bound
parameters, the property name a checked identifier.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from tessera.catalog.keys import ProductKeys

DEFAULT_KEYS = ProductKeys()

#: the product fields a condition or a trait may read
READABLE = ("product_id", "name", "category", "brand", "price", "currency", "available")
_VARCHARS = exp.DataType.build("VARCHAR[]")
_JSONS = exp.DataType.build("JSON[]")


def _products_array(properties: exp.Expr) -> exp.Expr:
    """`JSON[]`: the items of `properties.products` (empty when it is not an array)."""
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


def product_ids(properties: exp.Expr, keys: ProductKeys = DEFAULT_KEYS) -> exp.Expr:
    """`VARCHAR[]`: the product ids an event's properties name, the event's own first,
    then those of `products[]` (none: an empty list), each read through `keys`. Numbers
    are read as their text."""
    single = keys.sql_of(properties)
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


def event_items(properties: exp.Expr, keys: ProductKeys = DEFAULT_KEYS) -> exp.Expr:
    """`JSON[]`: the product items an event's properties name, each as a JSON object
    `{"product_id", "price", "quantity"}` (the id read through `keys`; price and quantity
    when the item gives them): the event itself when it names a product, then each item of
    `products[]` that names one."""
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


def category_prefix(category: exp.Expr, level: int | None) -> exp.Expr:
    """The first `level` levels of a category path ('Sport > Running > Shoes', 1 → 'Sport');
    the whole path without a level."""
    if level is None:
        return category
    parts = exp.func("string_split", category, exp.Literal.string(" > "))
    head = exp.func("list_slice", parts, exp.Literal.number(1), exp.Literal.number(int(level)))
    return exp.func("array_to_string", head, exp.Literal.string(" > "))


def product_item_values(items: exp.Expr, field: str, level: int | None) -> exp.Expr:
    """`STRUCT(k VARCHAR, amount DOUBLE)[]` in the items' order: each item's product
    `field` from the catalogue (NULL for a product it does not hold; the id itself for
    `product_id`), and its amount: the item's price (else the catalogue's) times its
    quantity (else 1), 0 when no price is known. A correlated subquery: DuckDB runs it
    as one join."""
    if field not in READABLE:
        raise ValueError(f"unknown product field {field!r}")
    item = exp.column("i")
    item_id = exp.func("json_extract_string", item.copy(), exp.Literal.string('$."product_id"'))
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
    amount = exp.func("coalesce", exp.Mul(this=price, expression=quantity), exp.Literal.number(0))
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
