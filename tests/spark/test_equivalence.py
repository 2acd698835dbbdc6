"""Spark equals DuckDB on the same log: profile ids, identifier sets, the ledger, computed
traits (itemised and derived ones included), segment members (the golden segments, random
trees and random product conditions), lookalike scores and audiences, and the ad-platform
files byte for byte.

One SparkSession (local[2], small-data settings) and one demo company for the whole file,
in one run: the export of a rebuilt DuckDB store is run through `tessera.spark.run` once
(lookalikes and audience files included), and every table is compared with the store's.
Keep new Spark tests in this file: `make test` gives each file to one worker
(`--dist loadfile`), so a second file would start a second session and demo. Marked
`spark` and `slow`: the set-up (demo, rebuild, export, session, run) is the cost.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.audiences import exports, lookalike
from tessera.audiences.exports import FORMATS
from tessera.events import export
from tessera.profiles import catalogue, loyalty
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.segments.compiler import compile_segment
from tessera.segments.tree import Aggregate, Did, EventRef, Filter, Node, Not, Window, from_json
from tessera.settings import Settings
from tests.integration.test_segment_agreement import trees

pyspark = pytest.importorskip("pyspark")
from tessera.spark.run import SparkRun  # noqa: E402  (after the skip: it imports pyspark)

if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17+ (`java` is not on the PATH)", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.spark]

NOW = datetime(2026, 12, 1, 12, 0)
GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "segments.json").read_text())


#: lookalikes made on the demo beside its own (`demo-buyers-lookalike`, weights over
#: everyone): name -> (seed segment, method, population, reach)
LOOKALIKES = {
    "like_france_classifier": ("demo-france", "classifier", "all", 12),
    "like_buyers_known": ("demo-buyers", "classifier", "known", 5),
    "like_france_anonymous": ("demo-france", "weights", "anonymous", 5),
}


#: loyalty rules loaded on the demo, so points and tiers are derived on both engines
LOYALTY = """
points_per_euro: {default: 1, Sport: 2, Sport > Running > Shoes: 3}
tiers: {Bronze: 0, Silver: 150, Gold: 600}
"""
#: product conditions over the demo's catalogue (`demo/catalog.py`): fields, tests, values
PRODUCT_TESTS = st.sampled_from([
    ("category", "starts_with", "Sport"), ("category", "=", "Sport > Running > Shoes"),
    ("category", "contains", "Audio"), ("brand", "=", "Acme Sport"), ("brand", "!=", "Voltia"),
    ("name", "contains", "jacket"), ("price", ">", 100.0), ("price", "<=", 40.0),
    ("available", "=", True), ("product_id", "starts_with", "run-"),
])  # fmt: skip
product_events = st.builds(
    lambda name, test: EventRef(name, (Filter(test[0], test[1], test[2], source="product"),)),
    st.sampled_from(["Order Completed", "Product Viewed", "Product Added"]),
    PRODUCT_TESTS,
)
product_trees = st.one_of(
    st.builds(Did, product_events, st.sampled_from([None, Window(seconds=400 * 86400)])),
    st.builds(Aggregate, st.just("count"), product_events, st.none(), st.none(),
              st.sampled_from([">=", "<"]), st.sampled_from([1.0, 2.0])),
    st.builds(Did, product_events).map(Not),
)  # fmt: skip

#: audience files Spark writes in the run, compared byte for byte with DuckDB's: every
#: format of an audience with a holdout, and the OpenRTB lines (IAB segments) of another
EXPORTS = [*(("demo-repeat-buyers", f) for f in FORMATS), ("demo-france", "openrtb")]
#: small-data settings: two cores, a few hundred rows per table; a JVM that lives a minute
#: compiles with C1 only and collects with one thread (a third less CPU for the same run),
#: with room for C1's code (its default 48 MB filled up mid-run and stopped the compiler)
SMALL = {
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.extraJavaOptions": (
        "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=128m"
    ),
}


class World:
    def __init__(self, runtime: Runtime, spark: Any, output: Path, result: SparkRun) -> None:
        self.runtime = runtime
        self.spark = spark
        self.output = output
        self.result = result

    def table(self, name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = ds.dataset(self.output / name).to_table().to_pylist()
        return rows

    def duck_members(self, tree: Node) -> set[str]:
        compiled = compile_segment(tree, now=NOW.isoformat(sep=" "))
        return {r[0] for r in self.runtime.store.fetch_all(compiled.sql, compiled.parameters)}

    def spark_members(self, tree: Node) -> set[str]:
        compiled = compile_segment(tree, now=NOW.isoformat(sep=" "), dialect="spark")
        return {r[0] for r in self.spark.sql(compiled.sql, args=compiled.parameters).collect()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from tessera.spark.run import run
    from tessera.spark.session import session

    root = tmp_path_factory.mktemp("spark")
    data = root / "data"
    environment = {"TESSERA_DATA_DIR": str(data), "PATH": str(Path(sys.executable).parent)}
    subprocess.run(
        [str(Path(sys.executable).parent / "tessera"), "demo", "--people", "60"],
        env=environment, check=True, capture_output=True,
    )  # fmt: skip
    configured = Settings(data_dir=data)
    runtime = Runtime.open(configured)
    loyalty.load(runtime.store, loyalty.parse(LOYALTY))
    names = catalogue.names(runtime.store, configured.computed_traits_file)
    for index, case in enumerate(GOLDEN):
        try:
            service.create(runtime.store, f"golden_{index}", case["source"], names, NOW)
        except Exception:  # a golden case naming what the demo lacks (a lookalike)
            continue
    runtime.pipeline.rebuild()
    for name, (seed, method, population, reach) in LOOKALIKES.items():
        lookalike.create(runtime.store, name, seed, now=NOW, reach=reach, method=method,
                         population=population,
                         policy=configured.consent_policy("advertising"))  # fmt: skip
    export.export(runtime.store, str(root / "lake"))
    spark = session("local[2]", config=SMALL)
    spark.sparkContext.setLogLevel("ERROR")
    result = run(spark, str(root / "lake"), str(root / "out"), configured, now=NOW,
                 exports=EXPORTS)  # fmt: skip
    try:
        yield World(runtime, spark, root / "out", result)
    finally:
        spark.stop()
        runtime.close()


def _duck(world: World, sql: str) -> set[tuple[Any, ...]]:
    return set(world.runtime.store.fetch_all(sql))


def test_profile_ids_and_attribution_equal_duckdb(world: World) -> None:
    spark = {(r["seq"], r["profile_id"]) for r in world.table("event_profiles")}
    assert spark == _duck(world, "SELECT seq, profile_id FROM event_profiles")
    profiles = {tuple(r.values()) for r in world.table("profiles")}
    assert profiles == _duck(world, "SELECT * FROM profiles")


def test_identifier_sets_and_ledger_equal_duckdb(world: World) -> None:
    identities = {tuple(r.values()) for r in world.table("identities")}
    assert identities == _duck(world, "SELECT type, value, profile_id, first_seq FROM identities")
    ledger = {tuple(r.values()) for r in world.table("identity_ledger")}
    assert ledger == _duck(world, "SELECT * FROM identity_ledger")


def test_profile_summaries_equal_duckdb(world: World) -> None:
    spark = {
        (r["profile_id"], r["event_count"], r["channels"], r["traits"], r["consent"],
         r["first_seen"], r["last_seen"])
        for r in world.table("profile_summaries")
    }  # fmt: skip
    duck = _duck(
        world,
        "SELECT profile_id, event_count, channels, traits, consent, first_seen, last_seen "
        "FROM profile_summaries",
    )
    assert spark == duck


def _assert_same_value(found: Any, expected: Any, key: tuple[str, str]) -> None:
    """Equal JSON values: sums within 1e-9 (Spark adds in another order), an object's
    keys in DuckDB's order (the JSON text the store serves)."""
    if isinstance(expected, float) and isinstance(found, int | float):
        assert found == pytest.approx(expected, rel=1e-9), key
    elif isinstance(expected, dict) and isinstance(found, dict):
        assert list(found) == list(expected), key
        for name, value in expected.items():
            _assert_same_value(found[name], value, key)
    else:
        assert found == expected, key


def test_computed_traits_equal_duckdb(world: World) -> None:
    """Every trait the store's full recompute gives: the built-ins, the demo's itemised
    traits (by product category, brand and id; engagement by channel and hour), the RFM
    scores, and what the refresh derives (best channel and time, loyalty)."""
    store = world.runtime.store
    definitions = catalogue.definitions(store, world.runtime.settings.computed_traits_file)
    assert world.result.failed_traits == []
    duck = {(p, n): v for p, n, v in catalogue.recompute(store, definitions, NOW)}
    spark = {(r["profile_id"], r["name"]): r["value"] for r in world.table("computed_traits")}
    assert {n for _, n in duck} >= {"favourite_category", "engagement_by_hour", "best_time",
                                    "loyalty_tier", "rfm_segment"}  # fmt: skip
    assert duck.keys() == spark.keys()
    for key, text in duck.items():
        expected = orjson.loads(text) if text is not None else None
        found = orjson.loads(spark[key]) if spark[key] is not None else None
        _assert_same_value(found, expected, key)


def test_golden_segments_have_the_same_members(world: World) -> None:
    """Every golden case: those the demo could store through `tessera spark run`'s own
    output, the others (naming what the demo lacks) queried on the session."""
    stored = dict(world.runtime.store.fetch_all("SELECT name, tree FROM segments"))
    by_id = dict(world.runtime.store.fetch_all("SELECT name, id FROM segments"))
    members: dict[str, set[str]] = {sid: set() for sid in by_id.values()}
    for row in world.table("segment_members"):
        members[row["segment_id"]].add(row["profile_id"])
    nonempty = 0
    for index, case in enumerate(GOLDEN):
        tree = from_json(case["tree"])
        name = f"golden_{index}"
        expected = world.duck_members(tree)
        nonempty += bool(expected)
        if name in stored:
            assert members[by_id[name]] == expected, case["source"]
        else:
            assert world.spark_members(tree) == expected, case["source"]
    assert nonempty >= 3  # the demo gives the cases members to disagree about


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(tree=trees)
def test_random_segments_have_the_same_members(world: World, tree: Node) -> None:
    assert world.spark_members(tree) == world.duck_members(tree)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(tree=product_trees)
def test_random_product_conditions_have_the_same_members(world: World, tree: Node) -> None:
    """Conditions on the catalogue (the golden ones have no member on the demo): the
    products an event names, joined to the exported catalogue."""
    assert world.spark_members(tree) == world.duck_members(tree)


def test_product_conditions_find_members_on_the_demo(world: World) -> None:
    tree = Did(EventRef("Order Completed", (Filter("category", "starts_with", "Sport",
                                                   source="product"),)))  # fmt: skip
    members = world.duck_members(tree)
    assert members and world.spark_members(tree) == members


def _duck_lookalikes(world: World) -> dict[tuple[str, str], tuple[float, int]]:
    rows = world.runtime.store.fetch_all(
        "SELECT lookalike, profile_id, score, rank FROM lookalike_members"
    )
    return {(name, profile): (score, rank) for name, profile, score, rank in rows}


def _assert_same_scores(
    duck: dict[tuple[str, str], tuple[float, int]],
    spark: dict[tuple[str, str], tuple[float, int]],
    reaches: dict[str, int],
) -> None:
    """The same candidates, scores within 1e-9, and the same audience at each reach (a
    profile tied with the last one kept, within 1e-9, may fall either side: DuckDB's
    own sum runs in no fixed order)."""
    assert duck.keys() == spark.keys()
    for key, (score, _) in duck.items():
        assert spark[key][0] == pytest.approx(score, rel=1e-9, abs=1e-9), key
    for name, reach in reaches.items():
        ranked = sorted((rank, p, s) for (n, p), (s, rank) in duck.items() if n == name)
        if len(ranked) <= reach:
            continue
        boundary = ranked[reach - 1][2]
        clear = {p for _, p, s in ranked if abs(s - boundary) > 1e-9}
        kept_duck = {p for rank, p, _ in ranked if rank <= reach} & clear
        kept_spark = {p for (n, p), (_, rank) in spark.items() if n == name and rank <= reach}
        assert kept_duck == kept_spark & clear, name


def test_lookalike_scores_and_audiences_equal_duckdb(world: World) -> None:
    """Every lookalike (both models, the three populations) scored by Spark with the
    stored model: the same candidates, the same scores, the same audience."""
    reaches = dict(world.runtime.store.fetch_all("SELECT name, reach FROM lookalikes"))
    assert set(world.result.lookalikes) == {*LOOKALIKES, "demo-buyers-lookalike"}
    assert world.result.failed_lookalikes == []
    spark = {
        (r["lookalike"], r["profile_id"]): (r["score"], r["rank"])
        for r in world.table("lookalike_members")
    }
    _assert_same_scores(_duck_lookalikes(world), spark, reaches)
    # The audiences' own segments (`in lookalike "X"`) read Spark's scores of this run.
    ids = dict(world.runtime.store.fetch_all("SELECT name, id FROM segments"))
    for name in reaches:
        expected = _duck(world, "SELECT profile_id FROM segment_members WHERE segment_id = "
                                f"'{ids[name]}' AND left_at IS NULL")  # fmt: skip
        found = {(r["profile_id"],) for r in world.table("segment_members")
                 if r["segment_id"] == ids[name]}  # fmt: skip
        assert found == expected, name


def test_audience_files_are_the_serving_machines_byte_for_byte(world: World) -> None:
    """Spark's Customer Match, Meta and OpenRTB files: the same bytes as `tessera
    audiences export` writes, the same consent refusals and holdout."""
    from tessera.spark.exports import file_name

    policy = world.runtime.settings.consent_policy("advertising")
    assert world.result.failed_exports == []
    by_file = {(e.segment, e.format): e for e in world.result.exports}
    assert set(by_file) == set(EXPORTS)
    for segment, file_format in EXPORTS:
        expected = io.StringIO()
        duck = exports.export(world.runtime.store, segment, file_format, expected, policy)
        found = (world.output / "exports" / file_name(segment, file_format)).read_bytes()
        assert found == expected.getvalue().encode(), (segment, file_format)
        assert by_file[(segment, file_format)] == duck
    repeat = by_file[("demo-repeat-buyers", "google")]
    assert repeat.rows > 0 and repeat.refused_consent > 0  # the rule had work to do


def test_loading_spark_results_serves_the_same_state(world: World) -> None:
    """Last: `tessera spark load` replaces the derived tables with Spark's; since they are
    equal, the store reads the same, and the open segment stays are Spark's members."""
    from tessera.spark.load import load

    tables = ("event_profiles", "identities", "profiles", "profile_summaries", "identity_ledger")
    before = {name: _duck(world, f"SELECT * FROM {name}") for name in tables}
    spark_members = {(r["segment_id"], r["profile_id"]) for r in world.table("segment_members")}
    lookalikes_before = _duck_lookalikes(world)
    reaches = dict(world.runtime.store.fetch_all("SELECT name, reach FROM lookalikes"))

    result = load(world.runtime.store, str(world.output), NOW)

    _assert_same_scores(lookalikes_before, _duck_lookalikes(world), reaches)

    assert {name: _duck(world, f"SELECT * FROM {name}") for name in tables} == before
    assert spark_members == _duck(
        world, "SELECT segment_id, profile_id FROM segment_members WHERE left_at IS NULL"
    )
    processed = world.runtime.store.fetch_one(
        "SELECT value FROM pipeline_state WHERE key = 'processed_seq'"
    )
    assert processed is not None and int(processed[0]) == result.processed_seq > 0


def test_an_export_request_names_a_segment_and_a_known_format() -> None:
    from tessera.errors import InvalidField
    from tessera.spark.exports import file_name, parse_requests

    assert parse_requests(["vip-france:google", "a.b:openrtb"]) == [
        ("vip-france", "google"), ("a.b", "openrtb")
    ]  # fmt: skip
    assert file_name("a.b", "openrtb") == "a.b.openrtb.ndjson"
    for bad in ("vip-france", ":google", "vip-france:tiktok"):
        with pytest.raises(InvalidField, match="SEGMENT:FORMAT"):
            parse_requests([bad])
