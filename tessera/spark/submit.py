"""The script `spark-submit` runs on a cluster (docs/scale.md):

    spark-submit [cluster options] "$SUBMIT" --input s3a://bucket/lake \\
        --output s3a://bucket/out [--now 2026-03-01T00:00:00] [--export vips:google]

with SUBMIT=$(python -c 'import tessera.spark.submit as s; print(s.__file__)').

The session is the cluster's (the master comes from spark-submit); settings come from the
TESSERA_ environment as everywhere else. Prints the run's summary as JSON.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from tessera.settings import Settings
from tessera.spark.exports import parse_requests
from tessera.spark.run import run
from tessera.spark.session import session


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tessera-spark", description="tessera spark run")
    parser.add_argument("--input", required=True, help="what `tessera log export` wrote")
    parser.add_argument("--output", required=True, help="where the tables go")
    parser.add_argument("--now", help="the clock (ISO time); default: now")
    parser.add_argument("--export", action="append", default=[],
                        help="SEGMENT:FORMAT, an audience file to write (repeatable)")  # fmt: skip
    parsed = parser.parse_args(arguments)
    spark = session(None)
    try:
        now = datetime.fromisoformat(parsed.now) if parsed.now else None
        requests = parse_requests(parsed.export)
        result = run(spark, parsed.input, parsed.output, Settings(), now=now, exports=requests)
    finally:
        spark.stop()
    print(result.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
