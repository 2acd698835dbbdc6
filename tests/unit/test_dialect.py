"""Segment and trait SQL for Spark: the DuckDB spellings Spark rejects are rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera.profiles.computed import BUILT_IN, ComputedTrait, compile_trait
from tessera.profiles.dialect import json_path
from tessera.segments.compiler import compile_segment
from tessera.segments.tree import from_json

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "segments.json").read_text())
DUCKDB_ONLY = ("TO_SECONDS", '["VARCHAR"]', "$p", "ISFINITE", "EPOCH_US", "ARG_MIN", "ARG_MAX",
               "JSON_EXTRACT_STRING", "LIST_CONTAINS", "DATE_DIFF(")  # fmt: skip


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
    assert "MODE(" in compile_trait(traits[-1], {}, "spark").sql(dialect="spark")


def test_json_paths_per_dialect() -> None:
    assert json_path('a"b') == '$."a\\"b"'
    assert json_path("a b", "spark") == "$['a b']"


def test_day_differences_count_midnights_on_spark_as_on_duckdb() -> None:
    import sqlglot

    from tessera.profiles.computed import RFM_SQL
    from tessera.profiles.dialect import for_dialect

    sql = for_dialect(sqlglot.parse_one(RFM_SQL, read="duckdb"), "spark").sql(dialect="spark")
    assert "DATEDIFF(CAST(:now AS TIMESTAMP_NTZ), MAX(e.timestamp))" in sql
