"""The product catalogue as personalisation reads it: the one door to the `products` table.

The catalogue (tessera/catalog, migration 14) may not exist in this store: every function
here answers as if the catalogue were empty when the table is missing, so recommendations
fall back on what the events say about each product (name, category, price).
"""

from __future__ import annotations

from typing import Any

import orjson

from tessera.store import Store


def has_catalogue(store: Store) -> bool:
    row = store.fetch_one(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'products' "
        "AND schema_name = current_schema()"
    )
    return bool(row and row[0])


def unavailable_products(store: Store) -> set[str]:
    """Products never to recommend: not available, or retired."""
    if not has_catalogue(store):
        return set()
    return {
        row[0]
        for row in store.fetch_all(
            "SELECT product_id FROM products WHERE NOT available OR retired_at IS NOT NULL"
        )
    }


def product_details(store: Store, product_ids: list[str] | None) -> dict[str, dict[str, Any]]:
    """What the catalogue says of these products, or of every product (None): name,
    category, brand, price, currency, url, image_url, attributes; products it lacks are
    left out."""
    if product_ids == [] or not has_catalogue(store):
        return {}
    among = "" if product_ids is None else " WHERE product_id IN (SELECT unnest(?))"
    rows = store.fetch_dicts(
        "SELECT product_id, name, category, brand, price, currency, url, image_url, "
        f"attributes FROM products{among}",
        None if product_ids is None else [product_ids],
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        attributes = row.pop("attributes")
        if isinstance(attributes, str):
            try:
                attributes = orjson.loads(attributes)
            except orjson.JSONDecodeError:
                attributes = None
        row["attributes"] = attributes if isinstance(attributes, dict) else {}
        found[str(row.pop("product_id"))] = row
    return found
