"""Catalogue rows and mappings (issue 14), pure: one row → one product, or the reason the
reject file gives; what a mapping may say; the product conditions' check."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.catalog.rows import (
    CatalogMapping,
    RowProblem,
    category_path,
    check_columns,
    load_mapping,
    read_product,
)
from tessera.errors import InvalidMapping
from tessera.segments.check import Catalogue, SegmentCheckError, check
from tessera.segments.parser import parse


def test_a_row_becomes_a_product_with_its_other_columns_as_attributes() -> None:
    mapping = load_mapping(
        "columns: {product_id: sku, category: path, available: stock}\n"
        "category_separator: /\ncurrency: EUR\n"
    )
    product = read_product(mapping, {
        "sku": 12345, "name": " Trail shoes ", "path": "Sport/ Running /Shoes/", "brand": "Acme",
        "price": "1 299,50", "stock": "Out of stock", "url": "https://shop.example/p/1",
        "colour": "red", "size": "", "attributes": '{"material": "mesh"}',
    })  # fmt: skip
    assert product.product_id == "12345"
    assert (product.name, product.category, product.brand) == (
        "Trail shoes", "Sport > Running > Shoes", "Acme"
    )  # fmt: skip
    assert (product.price, product.currency, product.available) == (1299.5, "EUR", False)
    assert product.attributes == {"material": "mesh", "colour": "red"}


def test_listed_attributes_keep_only_those_columns() -> None:
    mapping = CatalogMapping(attributes=("size",))
    product = read_product(mapping, {"product_id": "a", "size": "M", "colour": "red"})
    assert product.attributes == {"size": "M"}
    assert product.available is None  # not said: a new product is available, a known one kept


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"product_id": None}, "product_id is missing; every product needs one"),
        ({"product_id": "  "}, "product_id is empty; every product needs one"),
        ({"product_id": "x" * 201}, "product_id is 201 characters; the limit is 200"),
        ({"product_id": "a\nb"}, "product_id 'a\\nb' holds control characters"),
        ({"product_id": "a", "price": "cheap"}, "price 'cheap' must be a number such as 12.50"),
        ({"product_id": "a", "price": "-1"}, "price '-1' must be a number from 0 to 1e12"),
        ({"product_id": "a", "price": "nan"}, "price 'nan' must be a number from 0 to 1e12"),
        ({"product_id": "a", "currency": "euro"},
         "currency 'euro' must be an ISO 4217 code such as EUR"),
        ({"product_id": "a", "available": "soon"},
         "available 'soon' must be true/false, yes/no or in stock/out of stock"),
        ({"product_id": "a", "url": "javascript:alert(1)"},
         "url 'javascript:alert(1)' must be an http(s) address"),
        ({"product_id": "a", "attributes": "[1]"}, "attributes '[1]' must be a JSON object"),
        ({"product_id": "a", "category": {"x": 1}},
         "category {'x': 1} must be a path such as 'Sport > Running'"),
    ],
)  # fmt: skip
def test_a_bad_row_is_refused_with_the_field_the_value_and_the_fix(
    row: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RowProblem) as refused:
        read_product(CatalogMapping(), row)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "a catalogue mapping is a YAML mapping"),
        ("colums: {}", "unknown key(s) colums in the catalogue mapping"),
        ("columns: {sku: product_id}", "columns: unknown field 'sku'"),
        ("columns: {name: 3}", "columns: name must name a column, got 3"),
        ("format: xlsx", "format 'xlsx' must be one of csv, jsonl, parquet"),
        ("delimiter: ';;'", "delimiter ';;' must be one character"),
        ("currency: euro", "currency 'euro' must be an ISO 4217 code"),
        ("attributes: colour", "attributes must be a list of column names"),
        ("columns: [", "the catalogue mapping is not valid YAML"),
    ],
)
def test_a_bad_mapping_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(InvalidMapping, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_mapping(text)


def test_a_file_without_the_product_id_column_is_refused_whole() -> None:
    with pytest.raises(InvalidMapping, match="no column 'sku' for product_id"):
        check_columns(load_mapping("columns: {product_id: sku}"), ["id", "name"])


levels = st.lists(
    st.text(st.characters(blacklist_characters=">/", blacklist_categories=("Cs",)), min_size=1),
    min_size=1,
    max_size=5,
)


@given(levels)
def test_a_category_path_is_normal_once_and_for_all(parts: list[str]) -> None:
    path = category_path(parts)
    if path is None:
        assert all(not p.strip() for p in parts)
        return
    assert category_path(path) == path  # idempotent
    assert category_path("/".join(parts), "/") == path  # the file's separator or a list


def test_product_conditions_name_fields_the_catalogue_has() -> None:
    known = Catalogue(events={"Order Completed": {"revenue"}})
    source = 'did "Order Completed" where product.brnd = "Acme"'
    with pytest.raises(SegmentCheckError) as error:
        check(parse(source), known, source)
    assert "unknown product field 'brnd'" in error.value.message
    assert (error.value.line, error.value.column, error.value.suggestion) == (1, 29, "brand")
    fine = 'did "Order Completed" where product.category starts with "Sport"'
    assert check(parse(fine), known, fine) == parse(fine)
