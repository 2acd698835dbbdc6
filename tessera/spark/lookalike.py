"""Lookalike scoring on Spark: every profile scored with each lookalike's stored model.

The lookalike is trained on the serving machine (`audiences/lookalike.py`, scikit-learn
or TraitWeight); its report keeps the model as a linear function of the features
(`LinearModel`). Here the same features are built in Spark SQL from the same feature list
(`_PROPERTY_KEYS`, `MIN_SUPPORT`: the DuckDB query `_FEATURES_SQL` written for Spark), and
the model is applied as an expression: intercept + the sum of coefficient * x, x being 1 or
log(1 + count) as the model says. No scikit-learn on the executors. The score is the one
DuckDB stores (the classifier's decision function, i.e. the log-odds; its sigmoid would rank
the same).

The candidates are those DuckDB ranks: outside the seed segment (its members as Spark
computed them in the same run), in the lookalike's population, and allowing advertising
under the consent rule (`profiles/consent.py`, applied on the executors by the same
function). Ranked by score, ties by profile id, as `np.argsort(kind="stable")` does over
profiles in id order. A lookalike created before models were stored cannot be scored here:
it is listed as failed (recreate it), and `spark load` keeps its scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import pandas_udf
from pyspark.sql.window import Window

from tessera.audiences.lookalike import _PROPERTY_KEYS, MIN_SUPPORT, POPULATIONS, stored_model
from tessera.identity.identifiers import SYNC_PREFIX, anonymous_types_sql
from tessera.profiles import consent as consent_rule
from tessera.segments.tree import InLookalike, Node, children, from_json

#: the output table's columns, the store's `lookalike_members`
SCHEMA = "lookalike string, profile_id string, score double, rank bigint"

_KEYS = ", ".join(f"'{key}'" for key in _PROPERTY_KEYS)
# `audiences/lookalike.py`'s _FEATURES_SQL in Spark SQL. DuckDB's regexp_extract takes group
# 0 by default, Spark's group 1: the group is given. Keys are our own constants.
FEATURES_SQL = f"""
WITH per_event AS (
  SELECT coalesce(m.merged_into, ep.profile_id) AS profile_id, e.type, e.event, e.properties
  FROM events e JOIN event_profiles ep ON ep.seq = e.seq
  LEFT JOIN (SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL) m
    ON m.profile_id = ep.profile_id
  WHERE e.type IN ('track', 'page')
), properties AS (
  SELECT profile_id, event, key, get_json_object(properties, concat('$.', key)) AS value
  FROM per_event LATERAL VIEW explode(array({_KEYS})) k AS key WHERE type = 'track'
), raw AS (
  SELECT profile_id, 'event:' || event AS feature FROM per_event WHERE type = 'track'
  UNION ALL
  SELECT profile_id,
         'page:' || regexp_extract(get_json_object(properties, '$.path'),
                                   '^/[^/?#]*(/[^/?#]*)?', 0)
  FROM per_event WHERE type = 'page' AND get_json_object(properties, '$.path') IS NOT NULL
  UNION ALL
  SELECT profile_id, 'property:' || event || '.' || key || '=' || value FROM properties
  WHERE value IS NOT NULL AND length(value) <= 60
  UNION ALL
  SELECT profile_id, 'trait:country=' || get_json_object(traits, '$.country')
  FROM profile_summaries WHERE get_json_object(traits, '$.country') IS NOT NULL
  UNION ALL
  SELECT profile_id, 'trait:city=' || get_json_object(traits, '$.city')
  FROM profile_summaries WHERE get_json_object(traits, '$.city') IS NOT NULL
  UNION ALL
  SELECT profile_id, 'channel:' || channel
  FROM profile_summaries LATERAL VIEW explode(from_json(channels, 'array<string>')) c AS channel
  UNION ALL
  SELECT coalesce(p.merged_into, i.profile_id), 'third_party:' || t.segment_id
  FROM third_party_memberships t JOIN identities i ON i.type = t.identifier_type
  AND i.value = t.identifier_value LEFT JOIN profiles p ON p.profile_id = i.profile_id
  WHERE t.expires_at > CAST(:now AS TIMESTAMP)
), counted AS (
  SELECT profile_id, feature, count(*) AS n FROM raw WHERE feature IS NOT NULL
  GROUP BY profile_id, feature
), supported AS (
  SELECT *, count(*) OVER (PARTITION BY feature) AS support FROM counted
)
SELECT profile_id, feature, n FROM supported
WHERE support >= {MIN_SUPPORT} AND profile_id IN (SELECT profile_id FROM profile_summaries)
"""
#: live profiles with an identifier that is not a cookie, device, ad or synced id
_KNOWN_SQL = f"""
SELECT DISTINCT coalesce(p.merged_into, i.profile_id) AS profile_id FROM identities i
LEFT JOIN profiles p ON p.profile_id = i.profile_id
WHERE i.type NOT IN {anonymous_types_sql()} AND NOT startswith(i.type, '{SYNC_PREFIX}')
"""


class Lookalikes:
    """What scoring found: the table (None when no lookalike could be scored), the names
    scored, and the ones that could not be, with the reason."""

    def __init__(self) -> None:
        self.members: DataFrame | None = None
        self.scored: list[str] = []
        self.failed: list[tuple[str, str]] = []


def consent_allows(policy: str) -> Any:
    """A column function: does this `consent` JSON text allow advertising under `policy`?
    The serving machine's own rule, run on the executors."""

    @pandas_udf("boolean")  # type: ignore[call-overload]
    def allows(consent: pd.Series) -> pd.Series:
        return consent.map(
            lambda text: consent_rule.allows(
                orjson.loads(text) if text else {}, "advertising", policy
            )
        )

    return allows


def score(spark: SparkSession, now: str, policy: str, segment_members: DataFrame) -> Lookalikes:
    """Every exported lookalike scored with its stored model (`lookalike, profile_id,
    score, rank`: the candidates, ranked), from the views `run` made and the seed
    segments' members (`segment_id, profile_id`) Spark computed."""
    found = Lookalikes()
    models: list[tuple[str, str, str, float]] = []
    terms: list[tuple[str, str, float, bool]] = []
    segment_ids = {r["name"]: r["id"] for r in spark.table("segments").collect()}
    for row in spark.table("lookalikes").orderBy("name").collect():
        name = row["name"]
        model = stored_model(orjson.loads(row["report"] or "{}"))
        if model is None:
            found.failed.append((name, "made before lookalikes kept their model: recreate it "
                                       "to score it on Spark"))  # fmt: skip
            continue
        if row["seed"] not in segment_ids or row["population"] not in POPULATIONS:
            found.failed.append((name, f"its seed segment {row['seed']!r} is not exported"))
            continue
        models.append((name, segment_ids[row["seed"]], row["population"], model.intercept))
        binary = model.transform == "binary"
        terms += [(name, f, c, binary) for f, c in zip(model.features, model.coefficients,
                                                       strict=True)]  # fmt: skip
        found.scored.append(name)
    if not models:
        return found
    features = spark.sql(FEATURES_SQL, args={"now": now}).cache()
    lookalikes = spark.createDataFrame(
        models, "lookalike string, seed_id string, population string, intercept double"
    )
    coefficients = spark.createDataFrame(
        terms, "lookalike string, feature string, coefficient double, binary boolean"
    )
    # Summed in feature order: the same profile gets the same bits on every run.
    term = F.col("coefficient") * F.when(F.col("binary"), F.lit(1.0)).otherwise(
        F.log1p(F.col("n").cast("double"))
    )
    sums = (
        features.join(coefficients, "feature")
        .groupBy("lookalike", "profile_id")
        .agg(F.array_sort(F.collect_list(F.struct("feature", term.alias("term")))).alias("t"))
        .select(
            "lookalike",
            "profile_id",
            F.aggregate("t", F.lit(0.0), lambda total, x: total + x["term"]).alias("total"),
        )
    )
    scored = features.select("profile_id").distinct().crossJoin(lookalikes)
    allowed = spark.table("profile_summaries").select(
        "profile_id", consent_allows(policy)(F.col("consent")).alias("allowed")
    )
    known = spark.sql(_KNOWN_SQL).withColumn("known", F.lit(True))
    seeds = segment_members.select(
        F.col("segment_id").alias("seed_id"), "profile_id", F.lit(True).alias("in_seed")
    )
    candidates = (
        scored.join(sums, ["lookalike", "profile_id"], "left")
        .join(allowed, "profile_id", "left")
        .join(known, "profile_id", "left")
        .join(seeds, ["seed_id", "profile_id"], "left")
        .where(F.coalesce("allowed", F.lit(False)) & F.col("in_seed").isNull())
        .where(
            (F.col("population") == "all")
            | ((F.col("population") == "known") & F.col("known").isNotNull())
            | ((F.col("population") == "anonymous") & F.col("known").isNull())
        )
        .select(
            "lookalike",
            "profile_id",
            (F.col("intercept") + F.coalesce("total", F.lit(0.0))).alias("score"),
        )
    )
    order = Window.partitionBy("lookalike").orderBy(F.desc("score"), F.asc("profile_id"))
    found.members = candidates.withColumn("rank", F.row_number().over(order).cast("bigint"))
    return found


def mentions_lookalike(tree_json: str) -> bool:
    """Does this stored segment tree read a lookalike audience (`in lookalike "X"`)? (No
    for a tree that does not parse: the segment's own evaluation reports it.)"""

    def walk(node: Node) -> Iterator[Node]:
        yield node
        for child in children(node):
            yield from walk(child)

    try:
        tree = from_json(orjson.loads(tree_json))
    except Exception:
        return False
    return any(isinstance(n, InLookalike) for n in walk(tree))
