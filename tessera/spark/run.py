"""`tessera spark run`: the exported log in, the derived state out, on Spark.

    INPUT/  (`tessera log export`)        OUTPUT/
      toc.json, events/, inputs/    ->      identities/ profiles/ profile_summaries/
                                            event_profiles/ identity_ledger/
                                            computed_traits/ segment_members/
                                            lookalike_members/ run.json

Each output is a Parquet table in the store's columns; `tessera spark load OUTPUT` puts
them in the serving store. A computed trait or segment that Spark cannot run is recorded
in run.json with the reason, and the others carry on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlglot
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType

from tessera.audiences.exports import Exported
from tessera.errors import InvalidField
from tessera.events.timestamps import utc_now
from tessera.identity.rules import MergeRules
from tessera.identity.stored import identifier_from_stored
from tessera.profiles import catalogue, engagement, loyalty
from tessera.profiles.computed import RFM_NAMES, RFM_SQL, ComputedTrait, compile_trait
from tessera.profiles.consent import ENRICHMENT_PURPOSE
from tessera.profiles.dialect import for_dialect
from tessera.results import Result
from tessera.segments.compiler import compile_segment
from tessera.segments.tree import from_json
from tessera.settings import Settings
from tessera.spark import exports as audience_files
from tessera.spark import lookalike
from tessera.spark.component import IdentityConfig
from tessera.spark.identity import identity
from tessera.spark.lookalike import mentions_lookalike

#: A session setting: keep the events in memory (spilling to disk) for the queries that
#: follow identity. Set in local mode (`session.LOCAL`); on a cluster, set it when the
#: executors' memory holds the events (`--conf spark.tessera.cacheEvents=true`).
CACHE_EVENTS = "spark.tessera.cacheEvents"
#: the identity tables, in the order they are written
IDENTITY_TABLES = ("event_profiles", "identities", "profiles", "profile_summaries",
                   "identity_ledger")  # fmt: skip
#: inputs a segment may read; an absent one is an empty table of the store's columns
_EMPTY_INPUTS = {
    "segment_members": "segment_id string, profile_id string, entered_at timestamp, "
    "left_at timestamp",
    "segments": "id string, name string, query string, tree string",
    "lookalike_members": "lookalike string, profile_id string, score double, rank bigint",
    "lookalikes": "name string, seed string, method string, population string, reach bigint, "
    "created_at timestamp, report string",
    "third_party_memberships": "identifier_type string, identifier_value string, "
    "taxonomy string, segment_id string, expires_at timestamp",
    "taxonomy_closure": "taxonomy string, ancestor string, descendant string",
    "taxonomy_nodes": "taxonomy string, id string, path string",
    "computed_trait_definitions": "name string, definition string",
    "identity_blocks": "first string, second string",
    "pipeline_failures": "seq bigint",
    "sources": "id string, name string, channel string",
    "audience_holdouts": "audience string, share double, salt string",
    "loyalty_rules": "name string, document string",
    # without a catalogue, every product field is NULL (as in a store with no products)
    "products": "product_id string, name string, category string, brand string, "
    "price double, currency string, available boolean, retired_at timestamp, url string, "
    "image_url string, attributes string, updated_at timestamp",
}


class Failed(Result):
    name: str
    reason: str


class SparkRun(Result):
    """What `tessera spark run` computed."""

    input: str
    output: str
    now: str
    events: int
    profiles: int
    identities: int
    computed_traits: int
    segments: dict[str, int]
    #: ids of the segments that ran (a segment with no member has no size above)
    segments_evaluated: list[str]
    failed_traits: list[Failed]
    failed_segments: list[Failed]
    #: lookalike -> candidates scored (ranked in lookalike_members/)
    lookalikes: dict[str, int]
    failed_lookalikes: list[Failed]
    #: the ad-platform files written under exports/ (`--export SEGMENT:FORMAT`)
    exports: list[Exported]
    failed_exports: list[Failed]
    seconds: float
    #: seconds per step (identity, computed_traits, segments, lookalikes), to see where a
    #: run's time goes
    steps: dict[str, float]
    processed_seq: int


def _instants(frame: DataFrame) -> DataFrame:
    """`frame` with its timestamps as instants (Spark's TIMESTAMP).

    The export writes the store's UTC times as Parquet timestamps without a zone, which
    Spark 3.4 and later read as TIMESTAMP_NTZ; Spark 3.5's `unix_micros` and some
    comparisons take only TIMESTAMP. In the session's UTC (`run` sets it) the cast keeps
    every value as it is, and the tables Spark writes hold TIMESTAMP already."""
    if not any(isinstance(f.dataType, TimestampNTZType) for f in frame.schema.fields):
        return frame
    return frame.select(
        *(
            F.col(f.name).cast("timestamp").alias(f.name)
            if isinstance(f.dataType, TimestampNTZType)
            else F.col(f.name)
            for f in frame.schema.fields
        )
    )


def _inputs(spark: SparkSession, root: str) -> None:
    """Every exported input as a temp view (empty when the export has none)."""
    for name, schema in _EMPTY_INPUTS.items():
        try:
            table = _instants(spark.read.parquet(f"{root}/inputs/{name}.parquet"))
        except AnalysisException:
            table = spark.createDataFrame([], schema)
        table.createOrReplaceTempView(name)
    for extra in ("third_party_segments", "campaign_results", "campaign_conversions"):
        try:
            table = _instants(spark.read.parquet(f"{root}/inputs/{extra}.parquet"))
        except AnalysisException:
            continue
        table.createOrReplaceTempView(extra)


def _read_events(spark: SparkSession, root: str) -> DataFrame:
    # Partition values are text: a source id that looks like a number stays the same text.
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    events = spark.read.option("basePath", f"{root}/events").parquet(f"{root}/events")
    # The partition columns come back as columns: source_id is the event's own.
    return _instants(events.drop("day"))


def _config(spark: SparkSession, settings: Settings) -> IdentityConfig:
    blocks = [
        (identifier_from_stored(r[0]), identifier_from_stored(r[1]))
        for r in spark.table("identity_blocks").collect()
    ]
    rules = MergeRules.build(settings.identity_rules, settings.identity_max_identifiers, blocks)
    sources = [(r[0], r[1], r[2]) for r in spark.table("sources").collect()]
    return IdentityConfig.build(settings, rules, sources)


def _loyalty_rules(spark: SparkSession) -> loyalty.LoyaltyRules | None:
    """The exported loyalty rules (`loyalty.rules` of the store), None without any."""
    rows = spark.table("loyalty_rules").where("name = 'rules'").collect()
    return loyalty.of_document(rows[0]["document"]) if rows else None


def _definitions(
    spark: SparkSession, settings: Settings, rules: loyalty.LoyaltyRules | None
) -> list[ComputedTrait]:
    from tessera.profiles.computed import parse_definition

    stored = [
        parse_definition(orjson.loads(r["definition"]))
        for r in spark.table("computed_trait_definitions").orderBy("name").collect()
    ]
    file = settings.computed_traits_file
    from_file = catalogue.load_file(file) if file is not None and file.exists() else []
    return catalogue.defined(rules, from_file, stored)


def computed_traits(
    spark: SparkSession,
    traits: list[ComputedTrait],
    now: str,
    failed: list[Failed],
    rules: loyalty.LoyaltyRules | None = None,
) -> DataFrame | None:
    """`profile_id, name, value` (JSON text) for every trait, the RFM scores and what the
    refresh derives (`catalogue.recompute`): best channel and time, loyalty with `rules`."""
    parts: list[DataFrame] = []
    for trait in traits:
        parameters: dict[str, Any] = {"now": now}
        try:
            query = compile_trait(trait, parameters, "spark")
            used = {p.name for p in query.find_all(sqlglot.exp.Placeholder)}
            frame = spark.sql(
                query.sql(dialect="spark"),
                args={k: v for k, v in parameters.items() if k in used},
            )
            parts.append(_named_json(frame, (trait.name,)))
            if trait == loyalty.SPEND and rules is not None:
                parts.append(_loyalty(parts[-1], rules))
        except Exception as error:  # one bad definition never stops the others
            failed.append(Failed(name=trait.name, reason=_reason(error)))
    # The store's own SQL, transpiled: the RFM scores, and the best channel and time
    # (`engagement.DERIVED_SQL`, over the log as the refresh derives them).
    for sql, columns in ((RFM_SQL, RFM_NAMES), (engagement.DERIVED_SQL, engagement.NAMES)):
        try:
            parts.append(_named_json(_transpiled(spark, sql, now), columns))
        except Exception as error:
            failed.append(Failed(name=", ".join(columns), reason=_reason(error)))
    if not parts:
        return None
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union


def _transpiled(spark: SparkSession, sql: str, now: str) -> DataFrame:
    """A query of the store's (DuckDB's text) run on Spark, `$now` bound when it reads it."""
    text = for_dialect(sqlglot.parse_one(sql, read="duckdb"), "spark").sql(dialect="spark")
    return spark.sql(text, args={"now": now} if ":now" in text else None)


def _loyalty(spend: DataFrame, rules: loyalty.LoyaltyRules) -> DataFrame:
    """Points and tier from each person's `loyalty_spend` (JSON text), by the store's own
    rule (`loyalty.derive`) in the Python workers: one definition of the rates' prefixes
    and the rounding."""

    # useArrow given: PySpark would otherwise try to read a pandas UDF from the hints
    @F.udf("struct<points:bigint,tier:string>", useArrow=False)  # type: ignore[misc]
    def derived(value: str | None) -> tuple[int, str | None]:
        spent = orjson.loads(value) if value is not None else None
        found = loyalty.derive(rules, {loyalty.SPEND.name: spent})
        return found["loyalty_points"], found["loyalty_tier"]

    scored = spend.select("profile_id", derived("value").alias("d"))
    return _named_json(scored.select("profile_id", "d.points", "d.tier"), loyalty.NAMES)


def _reason(error: Exception) -> str:
    """The first line that says something (Spark's errors start with a blank line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


def _named_json(frame: DataFrame, names: Sequence[str]) -> DataFrame:
    """`profile_id, name, value` from a frame of a profile id then one column per name (by
    position): a row per profile and name, the value as the JSON text the store keeps
    (NULL stays NULL). The frame is read once for all its names (a query per name ran the
    engagement SQL three times: 31 of a demo run's 41 s of computed traits)."""
    frame = frame.toDF("profile_id", *(f"_v{index}" for index in range(len(names))))
    pairs = [
        F.struct(
            F.lit(name).alias("name"),
            F.to_json(F.struct(F.col(f"_v{index}").alias("v"))).alias("j"),  # {"v":...}
            F.col(f"_v{index}").isNull().alias("missing"),
        )
        for index, name in enumerate(names)
    ]
    text = F.expr("substring(_n.j, 6, length(_n.j) - 6)")
    return frame.select("profile_id", F.explode(F.array(*pairs)).alias("_n")).select(
        "profile_id",
        F.col("_n.name").alias("name"),
        F.when(F.col("_n.missing"), F.lit(None).cast("string")).otherwise(text).alias("value"),
    )


def segment_members(
    spark: SparkSession,
    now: str,
    failed: list[Failed],
    enrichment_policy: str = "required",
    *,
    lookalikes: bool = False,
) -> tuple[DataFrame | None, dict[str, str]]:
    """`segment_id, profile_id` for every exported segment, compiled for Spark SQL: those
    that read no lookalike audience, or (`lookalikes`) only those that do."""
    parts: list[DataFrame] = []
    names: dict[str, str] = {}
    for row in spark.table("segments").orderBy("name").collect():
        try:
            if mentions_lookalike(row["tree"]) != lookalikes:
                continue
            compiled = compile_segment(from_json(orjson.loads(row["tree"])), now=now,
                                       dialect="spark",
                                       enrichment_policy=enrichment_policy)  # fmt: skip
            frame = spark.sql(compiled.sql, args=compiled.parameters)
            parts.append(frame.select(F.lit(row["id"]).alias("segment_id"), "profile_id"))
            names[row["id"]] = row["name"]
        except Exception as error:
            failed.append(Failed(name=row["name"], reason=_reason(error)))
    if not parts:
        return None, {}
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union, names


def run(
    spark: SparkSession,
    input_dir: str,
    output_dir: str,
    settings: Settings,
    now: datetime | None = None,
    exports: list[tuple[str, str]] | None = None,
) -> SparkRun:
    """Identity, profiles, computed traits, segments and lookalike scores from the export
    at `input_dir`, written to `output_dir` as Parquet (each table replaced whole), and
    the ad-platform files of `exports` (segment name, format) from Spark's memberships.

    Raises:
        InvalidField: `input_dir` holds no export (no toc.json).
    """
    import time

    started = time.perf_counter()
    steps: dict[str, float] = {}
    mark = started

    def step(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        steps[name] = round(now - mark, 3)
        mark = now

    root = input_dir.rstrip("/")
    out = output_dir.rstrip("/")
    try:
        toc = json.loads(spark.sparkContext.wholeTextFiles(f"{root}/toc.json").first()[1])
    except Exception as error:
        raise InvalidField(
            f"{input_dir!r} holds no export (toc.json): run `tessera log export --to "
            f"{input_dir}` first",
            field="input",
            value=input_dir,
        ) from error
    moment = (now or utc_now()).replace(tzinfo=None).isoformat(sep=" ")
    # Event times are UTC and day windows UTC days: a cluster's own session (spark-submit,
    # a notebook) may default to another zone, which would move both.
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    _inputs(spark, root)
    events = _read_events(spark, root)
    if spark.conf.get(CACHE_EVENTS, "false") == "true":
        events = events.persist(StorageLevel.MEMORY_AND_DISK)
    events.createOrReplaceTempView("events")
    tables = identity(events, spark.table("pipeline_failures"), _config(spark, settings))
    for name in IDENTITY_TABLES:
        getattr(tables, name).write.mode("overwrite").parquet(f"{out}/{name}")
        spark.read.parquet(f"{out}/{name}").createOrReplaceTempView(name)
    step("identity")
    failed_traits: list[Failed] = []
    rules = _loyalty_rules(spark)
    traits = computed_traits(
        spark, _definitions(spark, settings, rules), moment, failed_traits, rules
    )
    if traits is None:
        traits = spark.createDataFrame([], "profile_id string, name string, value string")
    traits.write.mode("overwrite").parquet(f"{out}/computed_traits")
    spark.read.parquet(f"{out}/computed_traits").createOrReplaceTempView("computed_traits")
    step("computed_traits")
    failed_segments: list[Failed] = []
    members, evaluated = segment_members(
        spark, moment, failed_segments, settings.consent_policy(ENRICHMENT_PURPOSE)
    )
    if members is None:
        members = spark.createDataFrame([], "segment_id string, profile_id string")
    members.write.mode("overwrite").parquet(f"{out}/segment_members")
    step("segments")
    scored, failed_lookalikes = _lookalikes(spark, out, moment, settings, set(evaluated))
    # The segments built on a lookalike audience (`in lookalike "X"`) read the scores
    # just computed, so they follow the lookalikes in the same run.
    followers, also = segment_members(
        spark,
        moment,
        failed_segments,
        settings.consent_policy(ENRICHMENT_PURPOSE),
        lookalikes=True,
    )
    if followers is not None:
        followers.write.mode("append").parquet(f"{out}/segment_members")
    evaluated |= also
    step("lookalikes")
    written: list[Exported] = []
    failed_exports: list[Failed] = []
    final = spark.read.parquet(f"{out}/segment_members")
    policy = settings.consent_policy("advertising")
    for segment, file_format in exports or []:
        try:
            written.append(audience_files.export(spark, final, out, segment, file_format,
                                                 policy, moment))  # fmt: skip
        except Exception as error:  # one audience never stops the others
            failed_exports.append(Failed(name=f"{segment}:{file_format}", reason=_reason(error)))
    if exports:
        step("exports")
    sizes = {
        r[0]: r[1]
        for r in spark.read.parquet(f"{out}/segment_members")
        .groupBy("segment_id")
        .count()
        .collect()
    }
    result = SparkRun(
        input=input_dir,
        output=output_dir,
        now=moment,
        events=spark.table("event_profiles").count(),
        profiles=spark.table("profile_summaries").count(),
        identities=spark.table("identities").count(),
        computed_traits=spark.table("computed_traits").count(),
        segments=sizes,
        segments_evaluated=sorted(evaluated),
        failed_traits=failed_traits,
        failed_segments=failed_segments,
        lookalikes=scored,
        failed_lookalikes=failed_lookalikes,
        exports=written,
        failed_exports=failed_exports,
        seconds=round(time.perf_counter() - started, 3),
        steps=steps,
        processed_seq=int(toc.get("exported_seq", 0)),
    )
    _write_manifest(out, result)
    return result


def _lookalikes(
    spark: SparkSession, out: str, now: str, settings: Settings, evaluated: set[str]
) -> tuple[dict[str, int], list[Failed]]:
    """Score the lookalikes into `out`/lookalike_members and make that the view the
    segments read (with the exported scores of the lookalikes Spark could not score)."""
    # A seed segment evaluated here is read from this run; one that reads a lookalike
    # itself (evaluated after) from the export.
    exported = (
        spark.table("segment_members")
        .where(~F.col("segment_id").isin(sorted(evaluated)))
        .select("segment_id", "profile_id")
    )
    seeds = spark.read.parquet(f"{out}/segment_members").unionByName(exported)
    found = lookalike.score(spark, now, settings.consent_policy("advertising"), seeds)
    members = found.members
    if members is None:
        members = spark.createDataFrame([], lookalike.SCHEMA)
    members.write.mode("overwrite").parquet(f"{out}/lookalike_members")
    fresh = spark.read.parquet(f"{out}/lookalike_members")
    kept = spark.table("lookalike_members").where(~F.col("lookalike").isin(found.scored))
    fresh.unionByName(kept.select(*fresh.columns)).createOrReplaceTempView("lookalike_members")
    sizes = {r[0]: r[1] for r in fresh.groupBy("lookalike").count().collect()}
    return (
        {name: int(sizes.get(name, 0)) for name in found.scored},
        [Failed(name=name, reason=reason) for name, reason in found.failed],
    )


def _write_manifest(out: str, result: SparkRun) -> None:
    """run.json, one file beside the tables, written by pyarrow (Hadoop's `s3a://` is
    pyarrow's `s3://`)."""
    import pyarrow.fs as pafs

    target = "s3://" + out.removeprefix("s3a://") if out.startswith("s3a://") else out
    try:
        filesystem, root = pafs.FileSystem.from_uri(target)
    except Exception:
        filesystem, root = pafs.LocalFileSystem(), os.path.abspath(out.removeprefix("file://"))
    with filesystem.open_output_stream(f"{root.rstrip('/')}/run.json") as stream:
        stream.write(result.model_dump_json(indent=2).encode())
