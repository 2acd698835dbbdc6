"""The collect path's per-message cost without HTTP or the writer: decode a body and check
each message, as `/v1/batch` does before anything is queued.

    .venv/bin/python benchmarks/contract_check.py [--batches 300] [--runs 3]

Uses the ingest benchmark's bodies (100 analytics-python-shaped track calls each). To set
a release beside another in one sitting, run the same file against the other checkout:
`cd OTHER && PYTHONPATH=$PWD /path/to/.venv/bin/python /path/to/benchmarks/contract_check.py`
(it imports `tessera` from PYTHONPATH and the bodies from its own folder). Prints a table on
stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import make_batches

import tessera
from tessera.events.body import decode_body
from tessera.events.contract import Envelope, check_message
from tessera.events.timestamps import now_micros


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bodies = make_batches(args.batches, 100)
    envelope = Envelope("src", "web", now_micros())
    rates = []
    for _ in range(args.runs):
        started = time.perf_counter()
        for body in bodies:
            for message in decode_body(body, None, 4 << 20)["batch"]:
                check_message(message, envelope, default_type=None, max_bytes=32_768)
        rates.append(args.batches * 100 / (time.perf_counter() - started))
    result = {
        "benchmark": "contract_check",
        "tessera": str(Path(tessera.__file__).parent),
        "messages": args.batches * 100,
        "runs": args.runs,
        "messages_per_s_median": round(statistics.median(rates)),
        "messages_per_s_max": round(max(rates)),
    }
    print("| tessera | messages/s (median) | max |", file=sys.stderr)
    print("| --- | --- | --- |", file=sys.stderr)
    print(
        f"| {result['tessera']} | {result['messages_per_s_median']:,} "
        f"| {result['messages_per_s_max']:,} |",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
