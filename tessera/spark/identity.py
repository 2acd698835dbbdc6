"""Identity and profile summaries on Spark: the same tables the pipeline writes.

1. Each event's identifiers, read by the pipeline's own `read_identifiers` (normalising,
   junk rules) in Python workers.
2. An alias's previousId resolved over the whole log: a user_id when a user_id of that
   value appeared in an earlier event, else an anonymous_id (what the pipeline's graph
   answers at that event).
3. Connected components of the identifiers seen together (`components.py`).
4. Each component's events stitched in seq order by the pipeline's `Unifier`
   (`component.py`), which applies the limits, priorities, blocks and circuit breaker.

The result is exact, not an approximation: `component.py` says why. The cost moves to the
largest component, which one Python worker stitches alone (docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from tessera.identity.identifiers import JunkRules, read_identifiers
from tessera.spark.component import OUTPUT, IdentityConfig, unify
from tessera.spark.components import components

_IDENTIFIER_COLUMNS = ("user_id", "anonymous_id", "email", "phone", "device_id",
                       "advertising_id", "external_ids")  # fmt: skip
_IDS_SCHEMA = (
    "seq bigint, ids array<string>, prev_key string, ids_user array<string>, ids_anon array<string>"
)
_OUTPUT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in OUTPUT)


@dataclass(frozen=True)
class IdentityTables:
    """The derived tables, as the store holds them (columns in the store's order)."""

    event_profiles: DataFrame
    identities: DataFrame
    profiles: DataFrame
    profile_summaries: DataFrame
    identity_ledger: DataFrame


def batch_rows(events: DataFrame) -> DataFrame:
    """The events as the pipeline's batch reads them (`profiles/unifier.py` _BATCH_SQL)."""
    return events.select(
        "seq", "type", "source_id", "channel", "user_id", "anonymous_id", "previous_id",
        "email", "phone", "device_id", "advertising_id", "external_ids",
        F.unix_micros("timestamp").alias("timestamp"),
        F.when(F.col("type") != "group", F.col("traits")).alias("traits"),
        F.get_json_object("traits", "$.country").alias("country"),
        F.get_json_object("payload", "$.context.consent.categoryPreferences").alias("consent"),
        "event",
        F.coalesce(
            F.get_json_object("payload", "$.context.tcf"),
            F.get_json_object("traits", "$.tcf_consent"),
        ).alias("tcf"),
    )  # fmt: skip


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    clean = frame.astype(object).where(frame.notna(), None)
    records: list[dict[str, Any]] = clean.to_dict("records")
    return records


def _identifiers(config: IdentityConfig) -> Any:
    settings = config.settings
    junk = JunkRules.build(settings.identity_junk_values, settings.identity_junk_patterns)
    region = settings.default_region

    def keys(event: dict[str, Any], target: str | None) -> list[str]:
        found = read_identifiers(event, junk, region, alias_target=target).identifiers
        return [str(identifier) for identifier in found]

    def read(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            out: dict[str, list[Any]] = {k: [] for k in ("seq", "ids", "prev_key", "ids_user",
                                                           "ids_anon")}  # fmt: skip
            for event in _records(frame):
                out["seq"].append(int(event["seq"]))
                out["ids"].append(keys(event, None))
                previous = event.get("previous_id")
                if event["type"] == "alias" and previous:
                    out["prev_key"].append(f"user_id:{previous.strip()}")
                    out["ids_user"].append(keys(event, "user_id"))
                    out["ids_anon"].append(keys(event, "anonymous_id"))
                else:
                    out["prev_key"].append(None)
                    out["ids_user"].append(None)
                    out["ids_anon"].append(None)
            yield pd.DataFrame(out)

    return read


def event_identifiers(rows: DataFrame, config: IdentityConfig) -> DataFrame:
    """`seq, ids`: each event's identifiers as `type:value`, in the order the pipeline
    reads them, aliases resolved as the pipeline's graph resolves them."""
    read = rows.select("seq", "type", "previous_id", "country", *_IDENTIFIER_COLUMNS).mapInPandas(
        _identifiers(config), _IDS_SCHEMA
    )
    read = read.localCheckpoint()
    first_user = (
        read.select("seq", F.explode("ids").alias("key"))
        .where(F.col("key").startswith("user_id:"))
        .groupBy("key")
        .agg(F.min("seq").alias("first_seq"))
    )
    resolved = read.join(first_user, read.prev_key == first_user.key, "left").select(
        "seq",
        F.when(F.col("prev_key").isNull(), F.col("ids"))
        .when(F.col("first_seq") < F.col("seq"), F.col("ids_user"))
        .otherwise(F.col("ids_anon"))
        .alias("ids"),
    )
    return resolved


def event_components(identifiers: DataFrame) -> DataFrame:
    """`seq, component`: the component of each event (of its first identifier); an event
    without identifiers is alone (its negated seq)."""
    keyed = identifiers.select(
        "seq", F.transform("ids", lambda key: F.xxhash64(key)).alias("nodes")
    ).localCheckpoint()
    nodes = keyed.select(F.explode("nodes").alias("node"))
    edges = keyed.where(F.size("nodes") > 1).select(
        F.col("nodes")[0].alias("src"), F.explode(F.slice("nodes", 2, 1 << 20)).alias("dst")
    )
    labels = components(edges, nodes)
    firsts = keyed.select("seq", F.col("nodes")[0].alias("node"))
    return firsts.join(labels, "node", "left").select(
        "seq", F.coalesce(F.col("label"), -F.col("seq")).alias("component")
    )


def _unify(config: IdentityConfig) -> Any:
    def run(frame: pd.DataFrame) -> pd.DataFrame:
        columns = [c for c in frame.columns if c != "component"]
        rows = [tuple(r[c] for c in columns) for r in _records(frame)]
        rows = [(int(r[0]), *r[1:12], int(r[12]), *r[13:]) for r in rows]
        return pd.DataFrame(unify(config, rows), columns=[name for name, _ in OUTPUT])

    return run


def identity(events: DataFrame, failures: DataFrame, config: IdentityConfig) -> IdentityTables:
    """The pipeline's derived identity tables from the exported events (dead-lettered
    seqs, in `failures`, stepped over as the pipeline steps over them)."""
    rows = batch_rows(events.join(failures, "seq", "left_anti"))
    placed = event_components(event_identifiers(rows, config))
    stitched = (
        rows.join(placed, "seq")
        .groupBy("component")
        .applyInPandas(_unify(config), _OUTPUT_SCHEMA)
        .persist()
    )

    def kind(name: str) -> DataFrame:
        return stitched.where(F.col("kind") == name)

    micros = F.lit(None).cast("timestamp")
    ledger_order = Window.orderBy("seq", "ordinal")
    return IdentityTables(
        event_profiles=kind("ep").select("seq", F.col("a").alias("profile_id")),
        identities=kind("id").select(
            F.col("a").alias("type"),
            F.col("b").alias("value"),
            F.col("c").alias("profile_id"),
            F.col("seq").alias("first_seq"),
        ),
        profiles=kind("pr").select(
            F.col("a").alias("profile_id"),
            F.col("seq").alias("created_seq"),
            F.col("b").alias("merged_into"),
            F.col("c").alias("flagged"),
        ),
        profile_summaries=kind("su").select(
            F.col("a").alias("profile_id"),
            F.coalesce(F.timestamp_micros("t1"), micros).alias("first_seen"),
            F.coalesce(F.timestamp_micros("t2"), micros).alias("last_seen"),
            F.col("seq").alias("event_count"),
            F.col("b").alias("channels"),
            F.col("c").alias("traits"),
            F.col("d").alias("trait_state"),
            F.col("e").alias("consent"),
        ),
        identity_ledger=kind("le").select(
            F.row_number().over(ledger_order).cast("bigint").alias("id"),
            "seq",
            F.col("a").alias("kind"),
            F.col("b").alias("profile_id"),
            F.col("c").alias("identifier"),
            F.col("d").alias("other_identifier"),
            F.col("e").alias("other_profile_id"),
            F.col("f").alias("rule"),
        ),
    )
