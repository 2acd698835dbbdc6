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
        offered = both.join(labels, both.src == labels.node).select(
            F.col("dst").alias("node"), F.col("label")
        )
        updated = (
            labels.union(offered).groupBy("node").agg(F.min("label").alias("label"))
        ).localCheckpoint()
        changed = (
            updated.alias("n")
            .join(labels.alias("o"), "node")
            .where(F.col("n.label") != F.col("o.label"))
            .limit(1)
            .count()
        )
        labels = updated
        if changed == 0:
            return labels
    raise RuntimeError(f"identifier graph did not settle in {MAX_ROUNDS} rounds")
