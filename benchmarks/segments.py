"""Segment evaluation on 1 million profiles and 10 million events, beside hand-written SQL.

    python benchmarks/segments.py [--profiles 1000000] [--events 10000000] [--runs 3] [--json]

The data is generated in SQL straight into the derived tables (this measures segment
evaluation, not ingest or identity): profiles with country/age/plan traits, events of four
kinds over 180 days with revenue and category. For each typical segment the time of
Tessera's compiled query (median of --runs) is printed beside the time of the query a
person would write by hand in DuckDB for the same people, and their counts are checked
to be equal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tessera.segments.compiler import compile_segment
from tessera.segments.parser import parse
from tessera.store import open_store

NOW = "2026-06-30 00:00:00"
GENERATE = """
INSERT INTO profiles SELECT 'p' || i, i, NULL, NULL FROM range($profiles) t(i);
INSERT INTO profile_summaries
SELECT 'p' || i, TIMESTAMP '2026-01-01', TIMESTAMP '2026-06-29', 10, '["web"]',
       json_object('country', ['FR', 'DE', 'ES', 'GB', 'FR'][1 + i % 5],
                   'age', 18 + i % 60, 'plan', CASE WHEN i % 7 = 0 THEN 'pro' ELSE 'free' END),
       '{"traits": {}, "consent": {}}', '{}'
FROM range($profiles) t(i);
INSERT INTO events (seq, source_id, channel, message_id, dedupe_key, type, event, timestamp,
                    received_at, properties, payload)
SELECT i, 'src', 'web', 'm' || i, i, 'track',
       ['Product Viewed', 'Product Viewed', 'Order Completed', 'Email Opened'][1 + i % 4],
       TIMESTAMP '2026-01-01' + to_seconds((hash(i) % 15552000)::BIGINT),
       TIMESTAMP '2026-06-30',
       json_object('revenue', (hash(i * 7) % 300)::INT, 'category',
                   ['shoes', 'hats', 'bags'][1 + (i % 3)]),
       '{}'
FROM range($events) t(i);
INSERT INTO event_profiles SELECT i, 'p' || (hash(i * 13) % $profiles) FROM range($events) t(i);
"""

# name, segment, hand-written DuckDB query for the same people
CASES = [
    ("trait filter", 'traits.country = "FR" and traits.age >= 30',
     "SELECT profile_id FROM profile_summaries WHERE traits->>'country' = 'FR' "
     "AND CAST(traits->>'age' AS INT) >= 30"),
    ("event count in window", 'count(event "Order Completed" in last 30 days) >= 2',
     "SELECT ep.profile_id FROM events e JOIN event_profiles ep ON ep.seq = e.seq "
     "WHERE e.event = 'Order Completed' AND e.timestamp >= TIMESTAMP '2026-05-31' "
     "AND e.timestamp <= TIMESTAMP '2026-06-30' GROUP BY 1 HAVING count(*) >= 2"),
    ("aggregate of a property", 'sum(properties.revenue of event "Order Completed" '
     'in last 90 days) > 300',
     "SELECT ep.profile_id FROM events e JOIN event_profiles ep ON ep.seq = e.seq "
     "WHERE e.event = 'Order Completed' AND e.timestamp >= TIMESTAMP '2026-04-01' "
     "AND e.timestamp <= TIMESTAMP '2026-06-30' GROUP BY 1 "
     "HAVING sum(CAST(e.properties->>'revenue' AS DOUBLE)) > 300"),
    ("did and did not", 'did "Product Viewed" where properties.category = "shoes" '
     'in last 7 days and not did "Order Completed" in last 7 days',
     "SELECT ep.profile_id FROM events e JOIN event_profiles ep ON ep.seq = e.seq "
     "WHERE e.timestamp >= TIMESTAMP '2026-06-23' AND e.timestamp <= TIMESTAMP '2026-06-30' "
     "GROUP BY 1 HAVING count(*) FILTER (WHERE e.event = 'Product Viewed' "
     "AND e.properties->>'category' = 'shoes') > 0 "
     "AND count(*) FILTER (WHERE e.event = 'Order Completed') = 0"),
    ("nested and/or/not", '(traits.country = "FR" or traits.country = "DE") and '
     '(count(event "Order Completed") >= 4 or not did "Email Opened" in last 30 days)',
     "WITH o AS (SELECT ep.profile_id, count(*) FILTER (WHERE e.event = 'Order Completed') AS n, "
     "count(*) FILTER (WHERE e.event = 'Email Opened' AND e.timestamp >= TIMESTAMP '2026-05-31' "
     "AND e.timestamp <= TIMESTAMP '2026-06-30') AS opened "
     "FROM events e JOIN event_profiles ep ON ep.seq = e.seq GROUP BY 1) "
     "SELECT s.profile_id FROM profile_summaries s LEFT JOIN o ON o.profile_id = s.profile_id "
     "WHERE s.traits->>'country' IN ('FR', 'DE') "
     "AND (coalesce(o.n, 0) >= 4 OR coalesce(o.opened, 0) = 0)"),
]


def timed(store, sql: str, params: dict | None, runs: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    seconds, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        count = len(store.fetch_all(sql, params))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, object] = {"profiles": args.profiles, "events": args.events}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.duckdb")
        started = time.perf_counter()
        for statement in GENERATE.split(";"):
            if statement.strip():
                store.execute(statement, {k: v for k, v in
                                          {"profiles": args.profiles, "events": args.events}.items()
                                          if f"${k}" in statement})
        report["generate_seconds"] = round(time.perf_counter() - started, 1)
        for name, segment, hand in CASES:
            compiled = compile_segment(parse(segment), now=NOW)
            ours, ours_count = timed(store, compiled.sql, compiled.parameters, args.runs)
            theirs, hand_count = timed(store, hand, None, args.runs)
            rows.append({"case": name, "segment": segment, "tessera_s": round(ours, 3),
                         "hand_written_s": round(theirs, 3), "ratio": round(ours / theirs, 2),
                         "members": ours_count, "hand_written_members": hand_count})
        store.close()
    report["cases"] = rows
    if args.json:
        print(json.dumps(report, indent=2))
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"segments: {args.profiles:,} profiles, {args.events:,} events "
                        f"(median of {args.runs})")
    for column in ("case", "tessera s", "hand-written s", "ratio", "members"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["case"]), str(row["tessera_s"]), str(row["hand_written_s"]),
                      str(row["ratio"]), f"{row['members']:,}")
    Console(stderr=args.json).print(table)
    if any(r["members"] != r["hand_written_members"] for r in rows):
        print("MISMATCH between Tessera and the hand-written queries", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
