"""Segment evaluation on 1 million profiles and 10 million events, beside hand-written SQL.

    python benchmarks/segments.py [--profiles 1000000] [--events 10000000] [--merged-percent 10]
                                  [--runs 3]

The data is generated in SQL straight into the derived tables (this measures segment
evaluation, not ingest or identity): profiles with country/age/plan traits, events of four
kinds over 180 days with revenue and category. About `--merged-percent` of the profiles
are merged away into another (`profiles.merged_into` set, no summary of their own, as the
pipeline stores a merge), and their events stay attributed to the merged-away id in
`event_profiles`, so a query must follow the redirect to count them for the survivor.

For each typical segment the time of Tessera's compiled query (median of --runs) is
printed beside the time of the query a person would write by hand in DuckDB for the same
people. The member SETS must be equal (the script exits 1 and names the difference
otherwise), and for each event case the hand-written query without the merge redirect
must give a different set: proof that the merges change the answer, so the comparison
checks the compiled SQL's handling of them. The query streaming runs (all segments at
once, `compile_segments`) is checked the same way, over everyone and restricted to
profiles that absorbed others.

Prints the table on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit

from tessera.segments.compiler import compile_segment, compile_segments
from tessera.segments.parser import parse
from tessera.store import Store, open_store

NOW = "2026-06-30 00:00:00"
# A profile i not a multiple of 10 is merged away (into the multiple of 10 below it) for
# about `merged` percent of them: a survivor may absorb several, as in real merges.
GENERATE = """
CREATE TEMP TABLE generated AS
SELECT i, CASE WHEN i % 10 <> 0 AND hash(i * 31) % 100 < $merged
               THEN 'p' || (i - i % 10) END AS merged_into
FROM range($profiles) t(i);
INSERT INTO profiles SELECT 'p' || i, i, merged_into, NULL FROM generated;
INSERT INTO profile_summaries
SELECT 'p' || i, TIMESTAMP '2026-01-01', TIMESTAMP '2026-06-29', 10, '["web"]',
       json_object('country', ['FR', 'DE', 'ES', 'GB', 'FR'][1 + i % 5],
                   'age', 18 + i % 60, 'plan', CASE WHEN i % 7 = 0 THEN 'pro' ELSE 'free' END),
       '{"traits": {}, "consent": {}}', '{}'
FROM generated WHERE merged_into IS NULL;
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
DROP TABLE generated
"""
# The events of each live profile, as a person writes it by hand: an event attributed to a
# merged-away profile counts for the profile it was merged into. NAIVE forgets that (used
# only to prove the merges matter, never timed).
LIVE_EVENTS = (
    "ev AS (SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id, e.* FROM events e "
    "JOIN event_profiles ep ON ep.seq = e.seq LEFT JOIN profiles p "
    "ON p.profile_id = ep.profile_id AND p.merged_into IS NOT NULL)"
)
NAIVE_EVENTS = (
    "ev AS (SELECT ep.profile_id, e.* FROM events e JOIN event_profiles ep ON ep.seq = e.seq)"
)

# name, segment, hand-written DuckDB query for the same people
CASES = [
    (
        "trait filter",
        'traits.country = "FR" and traits.age >= 30',
        "SELECT profile_id FROM profile_summaries WHERE traits->>'country' = 'FR' "
        "AND CAST(traits->>'age' AS INT) >= 30",
    ),
    (
        "event count in window",
        'count(event "Order Completed" in last 30 days) >= 2',
        "WITH {events} SELECT profile_id FROM ev e "
        "WHERE e.event = 'Order Completed' AND e.timestamp >= TIMESTAMP '2026-05-31' "
        "AND e.timestamp <= TIMESTAMP '2026-06-30' GROUP BY 1 HAVING count(*) >= 2",
    ),
    (
        "aggregate of a property",
        'sum(properties.revenue of event "Order Completed" in last 90 days) > 300',
        "WITH {events} SELECT profile_id FROM ev e "
        "WHERE e.event = 'Order Completed' AND e.timestamp >= TIMESTAMP '2026-04-01' "
        "AND e.timestamp <= TIMESTAMP '2026-06-30' GROUP BY 1 "
        "HAVING sum(CAST(e.properties->>'revenue' AS DOUBLE)) > 300",
    ),
    (
        "did and did not",
        'did "Product Viewed" where properties.category = "shoes" '
        'in last 7 days and not did "Order Completed" in last 7 days',
        "WITH {events} SELECT profile_id FROM ev e "
        "WHERE e.timestamp >= TIMESTAMP '2026-06-23' AND e.timestamp <= TIMESTAMP '2026-06-30' "
        "GROUP BY 1 HAVING count(*) FILTER (WHERE e.event = 'Product Viewed' "
        "AND e.properties->>'category' = 'shoes') > 0 "
        "AND count(*) FILTER (WHERE e.event = 'Order Completed') = 0",
    ),
    (
        "nested and/or/not",
        '(traits.country = "FR" or traits.country = "DE") and '
        '(count(event "Order Completed") >= 4 or not did "Email Opened" in last 30 days)',
        "WITH {events}, o AS (SELECT profile_id, "
        "count(*) FILTER (WHERE e.event = 'Order Completed') AS n, "
        "count(*) FILTER (WHERE e.event = 'Email Opened' AND e.timestamp >= TIMESTAMP '2026-05-31' "
        "AND e.timestamp <= TIMESTAMP '2026-06-30') AS opened "
        "FROM ev e GROUP BY 1) "
        "SELECT s.profile_id FROM profile_summaries s LEFT JOIN o ON o.profile_id = s.profile_id "
        "WHERE s.traits->>'country' IN ('FR', 'DE') "
        "AND (coalesce(o.n, 0) >= 4 OR coalesce(o.opened, 0) = 0)",
    ),
]


def timed(
    store: Store, sql: str, params: dict[str, Any] | None, runs: int
) -> tuple[float, set[str]]:
    """The median time of `runs` runs, and the member set (of the last run)."""
    seconds: list[float] = []
    members: set[str] = set()
    for _ in range(runs):
        started = time.perf_counter()
        members = {row[0] for row in store.fetch_all(sql, params)}
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), members


def generate(store: Store, values: dict[str, int]) -> None:
    for statement in GENERATE.split(";"):
        if statement.strip():
            store.execute(statement, {k: v for k, v in values.items() if f"${k}" in statement})


def run_case(store: Store, segment: str, hand: str, runs: int) -> tuple[dict[str, Any], set[str]]:
    compiled = compile_segment(parse(segment), now=NOW)
    ours, our_members = timed(store, compiled.sql, compiled.parameters, runs)
    theirs, hand_members = timed(store, hand.format(events=LIVE_EVENTS), None, runs)
    row: dict[str, Any] = {
        "segment": segment, "tessera_s": round(ours, 3), "hand_written_s": round(theirs, 3),
        "ratio": round(ours / theirs, 2) if theirs else None, "members": len(our_members),
        "hand_written_members": len(hand_members),
        "only_in_tessera": sorted(our_members - hand_members)[:5],
        "only_in_hand_written": sorted(hand_members - our_members)[:5],
        "same_members": our_members == hand_members,
    }  # fmt: skip
    if "{events}" in hand:
        naive = {r[0] for r in store.fetch_all(hand.format(events=NAIVE_EVENTS))}
        row["members_changed_by_merges"] = len(naive ^ hand_members)
    return row, our_members


def check_streaming_query(store: Store, members: dict[str, set[str]]) -> list[str]:
    """The query streaming runs (every segment at once, `compile_segments`), over everyone
    and restricted to a sample of live profiles that absorbed others, must find the same
    members as each segment's own query: the restriction must reach the events of the
    merged-away ids too."""
    trees = [parse(segment) for _, segment, _ in CASES]
    sample = [row[0] for row in store.fetch_all(
        "SELECT DISTINCT merged_into FROM profiles WHERE merged_into IS NOT NULL "
        "ORDER BY merged_into LIMIT 2000"
    )]  # fmt: skip
    problems = []
    for label, among in (("everyone", None), ("merged survivors", sample)):
        compiled = compile_segments(trees, now=NOW, profiles=among)
        rows = store.fetch_all(compiled.sql, compiled.parameters)
        for index, (name, _, _) in enumerate(CASES):
            found = {row[0] for row in rows if row[1 + index]}
            expected = members[name] if among is None else members[name] & set(among)
            if found != expected:
                problems.append(
                    f"MISMATCH in the streaming query ({label}) for {name!r}: "
                    f"{len(found - expected):,} extra, {len(expected - found):,} missing"
                )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--merged-percent", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report: dict[str, Any] = {"profiles": args.profiles, "events": args.events}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.duckdb")
        started = time.perf_counter()
        generate(store, {"profiles": args.profiles, "events": args.events,
                         "merged": args.merged_percent})  # fmt: skip
        report["generate_seconds"] = round(time.perf_counter() - started, 1)
        merged = store.fetch_one(
            "SELECT count(*) FILTER (WHERE p.merged_into IS NOT NULL), "
            "(SELECT count(*) FROM event_profiles ep JOIN profiles m ON m.profile_id = "
            "ep.profile_id AND m.merged_into IS NOT NULL) FROM profiles p"
        )
        assert merged is not None
        report["merged_profiles"], report["events_of_merged_profiles"] = merged
        members: dict[str, set[str]] = {}
        for name, segment, hand in CASES:
            row, members[name] = run_case(store, segment, hand, args.runs)
            rows.append({"case": name, **row})
        streaming_problems = check_streaming_query(store, members)
        store.close()
    report["cases"] = rows
    table = Table(
        f"segments: {args.profiles:,} profiles ({report['merged_profiles']:,} merged away, "
        f"{report['events_of_merged_profiles']:,} of their events to redirect), "
        f"{args.events:,} events (median of {args.runs})",
        ["case", "segment", "Tessera s", "hand-written s", "ratio", "members",
         "same members", "members changed by merges"],
    )  # fmt: skip
    for row in rows:
        table.add(row["case"], f"`{row['segment']}`", row["tessera_s"], row["hand_written_s"],
                  row["ratio"], row["members"], row["same_members"],
                  row.get("members_changed_by_merges", ""))  # fmt: skip
    problems = [
        f"MISMATCH in {row['case']!r}: Tessera has {row['members']:,} members, the hand-written "
        f"query {row['hand_written_members']:,}; only in Tessera e.g. {row['only_in_tessera']}, "
        f"only hand-written e.g. {row['only_in_hand_written']}"
        for row in rows if not row["same_members"]
    ]  # fmt: skip
    problems += [
        f"NOT EXERCISED: in {row['case']!r} the merges change no member, so this data does "
        "not test the redirect (raise --merged-percent or the sizes)"
        for row in rows if row.get("members_changed_by_merges") == 0
    ]  # fmt: skip
    problems += streaming_problems
    report["problems"] = problems
    emit(report, table, notes=problems)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
