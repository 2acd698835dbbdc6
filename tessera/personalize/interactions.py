"""Who viewed, added and bought which product, read from the event log.

A product is named in the event's properties (Product Viewed, Product Added...) or in each
item of `properties.products` (Order Completed, Segment's e-commerce spec), under the paths
TESSERA_PRODUCT_ID_PROPERTIES lists (`catalog/keys.py`: `product_id` by default). Events
are attributed to the live profile (a merged profile's events follow it to the survivor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from tessera.catalog.joins import DEFAULT_KEYS
from tessera.catalog.keys import ProductKeys
from tessera.personalize.itemsim import Interaction, Product
from tessera.store import Store

VIEW_EVENTS = ("Product Viewed", "Product Clicked", "Product List Viewed")
ADD_EVENTS = ("Product Added", "Product Added to Wishlist", "Checkout Started")
PURCHASE_EVENTS = ("Order Completed", "Product Purchased")

_SQL = """
WITH ev AS (
  SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.seq,
    epoch(e.timestamp) AS moment,
    CASE WHEN list_contains($purchase, e.event) THEN 'purchase'
         WHEN list_contains($add, e.event) THEN 'add' ELSE 'view' END AS kind,
    e.properties
  FROM events e JOIN event_profiles ep ON ep.seq = e.seq
  LEFT JOIN profiles p ON p.profile_id = ep.profile_id
  WHERE e.type = 'track' AND list_contains($events, e.event) AND ep.seq > $since
    AND e.seq > $since
    AND e.properties IS NOT NULL AND json_valid(e.properties) {restrict}
), items AS (
  SELECT profile_id, seq, moment, kind, json_extract(properties, '$') AS item FROM ev
  WHERE {own_id} IS NOT NULL
  UNION ALL
  SELECT profile_id, seq, moment, kind, unnest(
    CASE WHEN json_type(properties, '$.products') = 'ARRAY'
         THEN CAST(json_extract(properties, '$.products') AS JSON[]) ELSE [] END) AS item
  FROM ev
), named AS (
  SELECT *, {item_id} AS product_id FROM items
)
SELECT profile_id, seq, moment, kind, product_id,
  json_extract_string(item, '$.name') AS name,
  json_extract_string(item, '$.category') AS category,
  TRY_CAST(json_extract_string(item, '$.price') AS DOUBLE) AS price
FROM named WHERE product_id IS NOT NULL
ORDER BY seq
"""


@dataclass
class Read:
    """Interactions read, what the events say of each product, and the last seq read."""

    interactions: list[Interaction]
    products: dict[str, Product]
    last_seq: int


def read(
    store: Store,
    *,
    since_seq: int = 0,
    profiles: list[str] | None = None,
    products: ProductKeys = DEFAULT_KEYS,
) -> Read:
    """Every interaction after `since_seq` (of everyone, or of these live profiles), the
    products named where `products` says."""
    parameters: dict[str, Any] = {
        "purchase": list(PURCHASE_EVENTS),
        "add": list(ADD_EVENTS),
        "events": [*VIEW_EVENTS, *ADD_EVENTS, *PURCHASE_EVENTS],
        "since": since_seq,
    }
    restrict = ""
    if profiles is not None:
        restrict = "AND coalesce(p.merged_into, ep.profile_id) IN (SELECT unnest($profiles))"
        parameters["profiles"] = profiles
    # Columns as arrays, not a list of tuples: a million rows converted to tuples is one C
    # call holding the GIL for seconds, and the server answers nothing meanwhile.
    # The paths are checked names (ProductKeys), written as constant JSON paths.
    sql = _SQL.format(
        restrict=restrict,
        own_id=products.sql_of(exp.column("properties")).sql(dialect="duckdb"),
        item_id=products.sql_of(exp.column("item")).sql(dialect="duckdb"),
    )
    columns = store.fetch_numpy(sql, parameters)
    interactions: list[Interaction] = []
    described: dict[str, Product] = {}
    last_seq = since_seq
    rows = zip(
        columns["profile_id"].tolist(), columns["moment"].tolist(), columns["kind"].tolist(),
        columns["product_id"].tolist(), columns["name"].tolist(), columns["category"].tolist(),
        columns["price"].tolist(), strict=True,
    )  # fmt: skip
    for profile_id, at, kind, product_id, name, category, price in rows:
        interactions.append(Interaction(profile_id, product_id, kind, float(at)))
        # The latest event's description of a product wins (rows come in log order).
        known = described.get(product_id)
        described[product_id] = Product(
            product_id,
            _text(name) or (known.name if known else None),
            _text(category) or (known.category if known else None),
            _number(price) if _number(price) is not None else (known.price if known else None),
        )
    if len(columns["seq"]):
        last_seq = max(last_seq, int(columns["seq"].max()))
    if profiles is None:
        row = store.fetch_one("SELECT coalesce(max(seq), 0) FROM event_profiles")
        last_seq = max(last_seq, int(row[0]) if row else 0)
    return Read(interactions, described, last_seq)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    # A missing price arrives as NaN (a masked array's fill) or None.
    if isinstance(value, int | float) and value == value:
        return float(value)
    return None
