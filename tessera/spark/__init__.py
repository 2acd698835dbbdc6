"""The heavy work on Apache Spark, from the same definitions as DuckDB (docs/scale.md).

`run.py` reads an exported log (`tessera log export`), computes identity, profiles,
computed traits and segment membership on Spark, and writes them as Parquet; `load.py`
brings them back into the serving store. Only this package imports pyspark, and only in
the modules that run on Spark (`session`, `components`, `identity`, `traits`, `segments`,
`run`): `component.py` (the pure per-component stitching) and `load.py` work without it.
"""
