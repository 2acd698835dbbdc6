"""Connected components of the identifier graph on Spark, by label propagation.

The shape splink uses for batch linkage (STYLE.md): each node takes the smallest label
among itself and its neighbours until no label changes; the number of rounds is the
graph's diameter (a handful for people: a person's identifiers sit one or two events
apart). Nodes are 64-bit hashes of `type:value`; a collision joins two components, which
stays exact (see `component.py`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

#: a safety stop: past this many rounds the graph is a chain no person makes
MAX_ROUNDS = 64


def components(edges: DataFrame, nodes: DataFrame) -> DataFrame:
    """`node, label` for every node: the smallest node of its component.

    Args:
        edges: `src, dst` (bigint), one per pair of identifiers seen in one event
            (a star from the event's first identifier is enough).
        nodes: `node` (bigint), every identifier, including those seen alone.
    """
    both = (
        edges.select("src", "dst")
        .union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
        .where(F.col("src") != F.col("dst"))
        .distinct()
        .localCheckpoint()
    )
    labels = nodes.select("node", F.col("node").alias("label")).distinct().localCheckpoint()
    for _ in range(MAX_ROUNDS):
        # One round, one job: each node's smallest neighbouring label, kept when smaller
        # than its own, with a flag saying so (counted from the checkpoint, no shuffle).
        offered = (
            both.join(labels, both.src == labels.node)
            .groupBy(F.col("dst").alias("node"))
            .agg(F.min("label").alias("offer"))
        )
        updated = (
            labels.join(offered, "node", "left")
            .select(
                "node",
                F.least("label", F.coalesce("offer", "label")).alias("label"),
                F.coalesce(F.col("offer") < F.col("label"), F.lit(False)).alias("changed"),
            )
            .localCheckpoint()
        )
        if updated.where("changed").limit(1).count() == 0:
            return updated.select("node", "label")
        labels = updated.select("node", "label")
    raise RuntimeError(f"identifier graph did not settle in {MAX_ROUNDS} rounds")
