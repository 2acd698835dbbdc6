"""The SparkSession Tessera runs on: local mode on one machine, or the cluster's."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

#: Local mode on one machine: the data is small next to a cluster's, and every task,
#: shuffle partition and listing job is a fixed cost paid per step.
LOCAL: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "2g",
    # The export's day=/source_id= directories are listed by the driver, not by a job of
    # one task per directory (the default past 32 directories, for clusters).
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
    # Every segment and trait query reads the events: from memory, not from a file per
    # day and source each time (`run.CACHE_EVENTS`).
    "spark.tessera.cacheEvents": "true",
}


def session(
    master: str | None = "local[2]",
    *,
    app_name: str = "tessera",
    config: Mapping[str, str] | None = None,
) -> SparkSession:
    """A session with the settings the equivalence depends on: UTC (event times are UTC,
    and day windows are UTC days), Arrow for the Python steps, and `LOCAL` in local mode.
    With `master=None` (under spark-submit) the cluster's master is kept. `config` is
    set last (the tests' small-data settings)."""
    if master is not None and master.startswith("local"):
        # Local workers run this interpreter (with Tessera and its dependencies), not
        # whatever `python3` is first on the PATH; PySpark reads only the environment
        # for it (spark.pyspark.python is spark-submit's).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    local = master is not None and master.startswith("local")
    for key, value in {**(LOCAL if local else {}), **(config or {})}.items():
        builder = builder.config(key, value)
    return (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
