"""The product catalogue on a real DuckDB (issue 14): an import upserts and rejects with
reasons; events join products by `product_id` and `products[].product_id`; segments with
product conditions pick the right people; itemised computed traits (favourite category,
spend per category, last viewed product, engagement per channel and hour) kept
incrementally equal the full recompute."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.catalog import products
from tessera.catalog.rows import load_mapping
from tessera.errors import NotFound
from tessera.personalize import callcentre, recommendations
from tessera.profiles import aggregate_store, catalogue
from tessera.profiles.aggregates import day_number
from tessera.runtime import Runtime
from tessera.segments import actions as segments
from tessera.settings import Settings
from tests.integration.helpers import send
from tests.integration.test_computed_incremental import BASE, PEOPLE, assert_same

CATALOGUE = [
    {"product_id": "shoe-1", "name": "Trail shoes", "category": "Sport > Running > Shoes",
     "brand": "Acme", "price": "129"},
    {"product_id": "sock-2", "name": "Socks", "category": "Sport > Running > Socks",
     "brand": "Zed", "price": "12.5"},
    {"product_id": "lamp-3", "name": "Lamp", "category": "Home > Lighting", "brand": "Acme",
     "price": "45"},
    {"product_id": "7", "name": "Pot", "category": "Home > Garden", "brand": "Terra",
     "price": "19"},
]  # fmt: skip

#: itemised traits: every function over products, channels and hours, with windows
DEFINITIONS: list[dict[str, Any]] = [
    {"name": "favourite_category", "function": "most_frequent", "by": "product.category",
     "category_level": 1},
    {"name": "favourite_brand_9", "function": "most_frequent", "by": "product.brand",
     "window_days": 9},
    {"name": "spend_per_category", "function": "sum_by", "event": "Order Completed",
     "by": "product.category", "category_level": 1},
    {"name": "last_viewed_product", "function": "last", "event": "Product Viewed",
     "by": "product.product_id"},
    {"name": "first_brand", "function": "first", "by": "product.brand"},
    {"name": "brands", "function": "distinct_count", "by": "product.brand"},
    {"name": "favourite_channel", "function": "most_frequent", "by": "channel"},
    {"name": "hours_5", "function": "count_by", "by": "hour_of_week",
     "window_days": 5},
]  # fmt: skip


def write_catalogue(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "catalogue.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def open_runtime(folder: Path, **overrides: Any) -> Runtime:
    runtime = Runtime.open(Settings(data_dir=folder, admin_token="t", **overrides))
    products.import_file(
        runtime.store, write_catalogue(folder, CATALOGUE), load_mapping(None), folder / "rejects"
    )
    return runtime


def test_an_import_upserts_keeps_retired_products_and_rejects_rows_with_reasons(
    tmp_path: Path,
) -> None:
    runtime = open_runtime(tmp_path)
    try:
        assert products.show(runtime.store, "shoe-1").price == 129.0
        products.retire(runtime.store, "lamp-3")
        rows = [
            {"sku": "shoe-1", "title": "Trail shoes 2", "cat": "Sport/Running/Shoes",
             "price": "119,90", "stock": "out of stock"},
            {"sku": "lamp-3", "title": "Lamp", "cat": "Home", "price": "40", "stock": "yes"},
            {"sku": "", "title": "No id", "cat": "", "price": "1", "stock": ""},
            {"sku": "bad-price", "title": "x", "cat": "", "price": "cheap", "stock": ""},
            {"sku": "new-9", "title": "New", "cat": "Travel", "price": "", "stock": "maybe"},
        ]  # fmt: skip
        mapping = load_mapping(
            "columns: {product_id: sku, name: title, category: cat, available: stock}\n"
            "category_separator: /\ncurrency: EUR\n"
        )
        done = products.import_file(
            runtime.store, write_catalogue(tmp_path, rows), mapping, tmp_path / "rejects"
        )
        assert (done.rows, done.created, done.updated, done.rejected) == (5, 0, 2, 3)
        shoe = products.show(runtime.store, "shoe-1")
        assert (shoe.name, shoe.category, shoe.price, shoe.available, shoe.currency) == (
            "Trail shoes 2", "Sport > Running > Shoes", 119.9, False, "EUR"
        )  # fmt: skip
        assert products.show(runtime.store, "lamp-3").retired  # a feed does not un-retire
        assert done.reject_file is not None
        with open(done.reject_file, newline="") as handle:
            rejected = list(csv.DictReader(handle))
        assert [(r["line"], r["reason"]) for r in rejected] == [
            ("4", "product_id is empty; every product needs one"),
            ("5", "price 'cheap' must be a number such as 12.50"),
            ("6", "available 'maybe' must be true/false, yes/no or in stock/out of stock"),
        ]
        page = products.products_page(runtime.store, category="Sport", limit=1)
        assert (page.total, page.items[0]["product_id"]) == (2, "shoe-1")
        second = products.products_page(runtime.store, category="Sport", cursor=page.next_cursor)
        assert [p["product_id"] for p in second.items] == ["sock-2"]
        # an empty cell keeps the value the product had: the brand is still Acme
        assert products.products_page(runtime.store, search="TRAIL acme").total == 1
        assert products.products_page(runtime.store, search="trail garden").total == 0
        with pytest.raises(NotFound, match="no product 'nope'"):
            products.show(runtime.store, "nope")
    finally:
        runtime.close()


def test_segments_with_product_conditions_pick_who_bought_or_viewed_those_products(
    tmp_path: Path,
) -> None:
    runtime = open_runtime(tmp_path)
    now = datetime.now().isoformat() + "Z"

    def track(user: str, event: str, properties: dict[str, Any], index: int) -> dict[str, Any]:
        return {"type": "track", "userId": user, "event": event, "properties": properties,
                "messageId": f"m{index}", "timestamp": now}  # fmt: skip

    try:
        send(
            runtime,
            [
                # Segment's e-commerce spec: the products of an order in products[]
                track("runner", "Order Completed", {"products": [{"product_id": "shoe-1"}]}, 1),
                track("homebody", "Order Completed",
                      {"products": [{"product_id": "lamp-3"}, {"product_id": 7}]}, 2),
                track("browser", "Product Viewed", {"product_id": "sock-2"}, 3),
                track("stranger", "Order Completed", {"product_id": "unknown-1"}, 4),
            ],
        )  # fmt: skip
        runtime.pipeline.process()
        members = {}
        for name, query in {
            "sport-buyers": 'did "Order Completed" where product.category starts with "Sport"',
            "acme-buyers": 'did "Order Completed" where product.brand = "Acme"',
            "garden": 'did "Order Completed" where product.category contains "Garden"',
            "sport-viewers": 'did "Product Viewed" where product.category starts with "Sport"',
            "cheap": 'did event "Order Completed" where product.price < 50',
        }.items():
            segments.create(runtime, name, query)
            found = segments.members(runtime, name, limit=50).items
            members[name] = {runtime.store.fetch_one(
                "SELECT value FROM identities WHERE type = 'user_id' AND "
                "profile_id = ?", [m["profile_id"]])[0] for m in found}  # type: ignore[index]  # fmt: skip
        assert members == {
            "sport-buyers": {"runner"},
            "acme-buyers": {"runner", "homebody"},
            "garden": {"homebody"},
            "sport-viewers": {"browser"},
            "cheap": {"homebody"},
        }
    finally:
        runtime.close()


MISSING = object()


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A view or an order naming products one way or the other, or an identify."""
    message: dict[str, Any] = {"anonymousId": draw(st.sampled_from(PEOPLE["anonymousId"]))}
    if draw(st.booleans()):
        message["userId"] = draw(st.sampled_from(PEOPLE["userId"]))
    kind = draw(st.sampled_from(["Order Completed", "Product Viewed", "Email Opened", None]))
    ids = st.sampled_from(["shoe-1", "sock-2", "lamp-3", 7, "unknown", None])
    if kind is None:
        message["type"] = "identify"
    else:
        message |= {"type": "track", "event": kind}
        properties: dict[str, Any] = {}
        if draw(st.booleans()):
            properties["product_id"] = draw(ids)
            if draw(st.booleans()):
                properties["price"] = draw(st.sampled_from([10, "5.5", "n/a"]))
        if draw(st.booleans()):
            properties["products"] = draw(
                st.one_of(
                    st.lists(
                        st.fixed_dictionaries(
                            {"product_id": ids},
                            optional={
                                "price": st.sampled_from([3, 2.25, "x"]),
                                "quantity": st.sampled_from([1, 2, "3"]),
                            },
                        ),
                        max_size=3,
                    ),
                    st.just("not a list"),
                )
            )
        message["properties"] = properties
    at = BASE + timedelta(days=draw(st.integers(0, 20)), hours=draw(st.integers(0, 23)))
    message["timestamp"] = at.isoformat() + "Z"
    return message


@given(
    log=st.lists(messages(), min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 10), min_size=1, max_size=2),
    steps=st.lists(st.integers(0, 5 * 24), min_size=3, max_size=3),
)
# Few examples: each full recompute plans a query per trait (~50 ms each on a quiet
# machine); the functions themselves are shared with test_computed_incremental.py.
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_itemised_traits_kept_incrementally_equal_the_full_recompute(
    tmp_path_factory: Any, log: list[dict[str, Any]], cuts: list[int], steps: list[int]
) -> None:
    runtime = open_runtime(tmp_path_factory.mktemp("items"), pipeline_batch_size=4)
    try:
        for definition in DEFINITIONS:
            catalogue.save_definition(runtime.store, definition)
        send(runtime, [dict(m, messageId=f"m{i}") for i, m in enumerate(log)])
        traits = catalogue.definitions(runtime.store)
        now = BASE
        runtime.pipeline.clock = lambda: now
        for cut, step in zip([*cuts, len(log)], steps, strict=False):
            runtime.pipeline.process(max_events=cut, sweep=False)
            now += timedelta(hours=step)
            aggregates = runtime.pipeline.aggregates
            aggregates.prune(day_number(now))
            assert_same(
                catalogue.current(runtime.store, aggregates, now),
                catalogue.recompute(runtime.store, traits, now),
            )
        runtime.pipeline.process(sweep=False)
        full = catalogue.recompute(runtime.store, traits, now)
        assert_same(catalogue.current(runtime.store, runtime.pipeline.aggregates, now), full)
        restored = aggregate_store.restore(runtime.store, traits)
        assert_same(catalogue.current(runtime.store, restored, now), full)
    finally:
        runtime.close()


def test_products_named_by_sku_reach_segments_traits_recommendations_and_the_call_centre(
    tmp_path: Path,
) -> None:
    """TESSERA_PRODUCT_ID_PROPERTIES=["product_id", "sku", "item.sku"]: events naming
    products by `sku` (top level and in products[]) and by a nested `item.sku` count
    everywhere a product id is read, and `product_id` still wins where both are given."""
    runtime = open_runtime(tmp_path, product_id_properties=["product_id", "sku", "item.sku"])
    now = datetime.now().isoformat() + "Z"

    def track(user: str, event: str, properties: dict[str, Any], index: int) -> dict[str, Any]:
        return {"type": "track", "userId": user, "event": event, "properties": properties,
                "messageId": f"m{index}", "timestamp": now}  # fmt: skip

    try:
        send(
            runtime,
            [
                {"type": "identify", "userId": "runner", "messageId": "i1", "timestamp": now,
                 "traits": {"email": "runner@example.com"}},
                track("runner", "Order Completed",
                      {"order_id": "o1", "products": [{"sku": "shoe-1", "quantity": 2}]}, 1),
                track("runner", "Product Viewed", {"sku": "sock-2"}, 2),
                track("homebody", "Order Completed",
                      {"products": [{"item": {"sku": "lamp-3"}}, {"sku": 7}]}, 3),
                track("homebody", "Product Viewed", {"item": {"sku": "shoe-1"}}, 4),
                # both given: the first path listed names the product
                track("both", "Order Completed", {"product_id": "lamp-3", "sku": "shoe-1"}, 5),
            ],
        )  # fmt: skip
        runtime.pipeline.process()

        def users(name: str, query: str) -> set[str]:
            segments.create(runtime, name, query)
            found = segments.members(runtime, name, limit=50).items
            return {runtime.store.fetch_one(
                "SELECT value FROM identities WHERE type = 'user_id' AND "
                "profile_id = ?", [m["profile_id"]])[0] for m in found}  # type: ignore[index]  # fmt: skip

        assert users(
            "sport", 'did "Order Completed" where product.category starts with "Sport"'
        ) == {"runner"}
        assert users("acme", 'did "Order Completed" where product.brand = "Acme"') == {
            "runner", "homebody", "both"
        }  # fmt: skip
        assert users(
            "garden", 'did "Order Completed" where product.category contains "Garden"'
        ) == {"homebody"}

        for definition in DEFINITIONS:
            catalogue.save_definition(runtime.store, definition)
        traits = catalogue.definitions(runtime.store)
        moment = datetime.now()
        full = catalogue.recompute(runtime.store, traits, moment, runtime.pipeline.products)
        values = {(profile, name): value for profile, name, value in full}
        runner = runtime.store.fetch_one(
            "SELECT profile_id FROM identities WHERE type = 'user_id' AND value = 'runner'"
        )[0]  # type: ignore[index]
        assert values[(runner, "spend_per_category")] == '{"Sport":258.0}'
        assert values[(runner, "last_viewed_product")] == '"sock-2"'
        runtime.pipeline.refresh_computed_traits()
        assert_same(catalogue.current(runtime.store, runtime.pipeline.aggregates, moment), full)

        trained = recommendations.train(runtime)
        assert trained.products >= 4  # shoe-1, sock-2, lamp-3 and 7, all read by sku
        card = callcentre.caller(runtime, "Runner@Example.com")
        assert card.orders[0].products == ["shoe-1"]
    finally:
        runtime.close()
