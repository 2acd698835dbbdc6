"""How an event names products, as SQL trees: the ids in `properties.<product_id>` and in
each item of `properties.products` (Segment's e-commerce spec: Order Completed, Cart
Viewed... carry a `products` array). The property is a setting
(`TESSERA_PRODUCT_ID_PROPERTY`, `product_id` by default).

Segments and computed traits build on these expressions; the values a user wrote are bound
parameters, the property name a checked identifier.
"""

from __future__ import annotations

import re

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
