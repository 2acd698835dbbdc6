"""Segment and trait SQL for Spark: the DuckDB spellings Spark rejects are rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera.catalog.keys import ProductKeys
from tessera.profiles import engagement, loyalty
from tessera.profiles.computed import BUILT_IN, CATALOGUE_EXAMPLES, ComputedTrait, compile_trait
from tessera.profiles.dialect import for_dialect, json_path
from tessera.segments.compiler import compile_segment
from tessera.segments.tree import from_json

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "segments.json").read_text())
DUCKDB_ONLY = ("TO_SECONDS", '["VARCHAR"]', "$p", "ISFINITE", "EPOCH_US", "ARG_MIN", "ARG_MAX",
               "JSON_EXTRACT_STRING", "LIST_CONTAINS", "DATE_DIFF(", "LIST_", "GENERATE_SUBSCRIPTS",
               "UNNEST", "JSON>", "AS JSON", "ISODOW", "DAYOFWEEK", " && ", '$."',
               "[*]")  # fmt: skip


@pytest.mark.parametrize("case", GOLDEN, ids=lambda case: case["source"][:40])
def test_golden_segments_compile_to_spark_without_duckdb_spellings(case: dict) -> None:
    compiled = compile_segment(from_json(case["tree"]), now="2026-03-01 00:00:00", dialect="spark")
    for spelling in DUCKDB_ONLY:
        assert spelling not in compiled.sql
    assert " CAST(GET_JSON_OBJECT" not in compiled.sql  # TRY_CAST, never CAST, of user data


def test_the_duckdb_dialect_is_unchanged_by_default() -> None:
    tree = from_json(GOLDEN[0]["tree"])
    assert (
        compile_segment(tree, now="x").sql == compile_segment(tree, now="x", dialect="duckdb").sql
    )


def test_every_trait_function_compiles_to_spark() -> None:
    traits = [
        *BUILT_IN,
        ComputedTrait("first_category", "first", "Product Viewed", "category"),
        ComputedTrait("last_category", "last", "Product Viewed", "category"),
        ComputedTrait("favourite", "most_frequent", "Product Viewed", "category", {"a": 1}, 30),
    ]
    for trait in traits:
        parameters: dict[str, object] = {}
        sql = compile_trait(trait, parameters, "spark").sql(dialect="spark")
        for spelling in DUCKDB_ONLY:
            assert spelling not in sql, (trait.name, sql)
        assert all(not str(v).startswith('$."') for v in parameters.values())
    assert "MIN_BY" in compile_trait(traits[-3], {}, "spark").sql(dialect="spark")
    assert "ARRAY_SORT(COLLECT_LIST(" in compile_trait(traits[-1], {}, "spark").sql(dialect="spark")


@pytest.mark.parametrize(
    "trait",
    [
        *CATALOGUE_EXAMPLES,
        engagement.BY_CHANNEL,
        engagement.BY_HOUR,
        loyalty.SPEND,
        ComputedTrait("brands_30d", "distinct_count", "Order Completed", by="product.brand",
                      window_days=30),
        ComputedTrait("first_channel", "first", None, by="channel"),
        ComputedTrait("orders_by_hour", "count_by", "Order Completed", by="hour_of_week"),
    ],
    ids=lambda trait: trait.name,
)  # fmt: skip
def test_itemised_traits_compile_to_spark_without_duckdb_spellings(trait: ComputedTrait) -> None:
    for keys in (ProductKeys(), ProductKeys(("sku", "item.sku"))):
        sql = compile_trait(trait, {}, "spark", keys).sql(dialect="spark")
        for spelling in DUCKDB_ONLY:
            assert spelling not in sql, (trait.name, spelling)


def test_one_filter_per_aggregate_on_spark() -> None:
    """`arg_min(v, o) FILTER (c)`: Spark's min_by takes the NULL test and c in one FILTER."""
    sql = compile_trait(CATALOGUE_EXAMPLES[3], {}, "spark").sql(dialect="spark")
    assert "MAX_BY(k, ARRAY(UNIX_MICROS(timestamp), seq, n)) FILTER(WHERE NOT k IS NULL AND" in sql
    assert ") FILTER(WHERE NOT k IS NULL) FILTER" not in sql


def test_spark_rounds_as_duckdb_does_and_counts_list_positions_from_one() -> None:
    import sqlglot

    def spark(text: str) -> str:
        return for_dialect(sqlglot.parse_one(text, read="duckdb"), "spark").sql(dialect="spark")

    # DuckDB rounds x * 100 to a whole number (2.675 is 2.67499..., so 2.67); Spark's
    # round(x, 2) rounds the decimal text 2.675 half up.
    assert spark("SELECT round(x, 2)") == "SELECT (ROUND(x * 100) / 100)"
    assert spark("SELECT round(x)") == "SELECT ROUND(x)"
    assert spark("SELECT ['a', 'b'][i]") == "SELECT ELEMENT_AT(ARRAY('a', 'b'), CAST(i AS INT))"
    assert spark("SELECT isodow(t)") == "SELECT (WEEKDAY(t) + 1)"


def test_json_paths_per_dialect() -> None:
    assert json_path('a"b') == '$."a\\"b"'
    assert json_path("a b", "spark") == "$['a b']"


def test_day_differences_count_midnights_on_spark_as_on_duckdb() -> None:
    import sqlglot

    from tessera.profiles.computed import RFM_SQL
    from tessera.profiles.dialect import for_dialect

    sql = for_dialect(sqlglot.parse_one(RFM_SQL, read="duckdb"), "spark").sql(dialect="spark")
    assert "DATEDIFF(CAST(:now AS TIMESTAMP_NTZ), MAX(e.timestamp))" in sql
