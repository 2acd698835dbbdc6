"""The SparkSession Tessera runs on: local mode on one machine, or the cluster's."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession


def session(master: str | None = "local[2]", *, app_name: str = "tessera") -> SparkSession:
    """A session with the settings the equivalence depends on: UTC (event times are UTC,
    and day windows are UTC days), Arrow for the Python steps, few shuffle partitions in
    local mode. With `master=None` (under spark-submit) the cluster's master is kept."""
    if master is not None and master.startswith("local"):
        # Local workers run this interpreter (with Tessera and its dependencies), not
        # whatever `python3` is first on the PATH; PySpark reads only the environment
        # for it (spark.pyspark.python is spark-submit's).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        builder = (
            builder.config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "2g")
        )
    return (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
