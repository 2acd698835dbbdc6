"""Pipeline benchmark: identity + profiles throughput, and profile look-ups under load.

    python benchmarks/pipeline.py [--people 10000] [--scale 10] [--rate 500] [--seconds 15]

1. Loads the demo company (through the collect API, as `tessera demo` does).
2. Incremental: the pipeline processes the log batch by batch, as `serve` does.
3. Rebuild: `tessera rebuild` over the same log.
4. The same at `--scale` times the data: copies of the demo log with every identifier
   suffixed per copy (so each copy is a distinct set of people), appended in SQL.
5. Look-ups: a real `tessera serve` on the 1x data answers GET /api/profiles/TYPE:VALUE
   for random known e-mails and user ids, offered open-loop at `--rate` per second
   (request k is due at k / rate whatever the answers do; its latency runs from that
   scheduled time, so a slow answer that holds up the next request is counted, not
   hidden: no coordinated omission). Reported: offered and achieved rate, p50/p99 from
   the schedule, and the service time from the actual send beside it.
   Once as the profile (`?events=0`: identifiers, traits, computed traits, merges, from
   the server's memory) and once with its 20 latest events (one query on the event log).
   Baseline in the same run: GET /api/health on the same server (the HTTP floor).

Prints the tables on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit, free_port, run_open_loop, start_server, stop

from tessera.runtime import Runtime
from tessera.settings import Settings

COPY_SQL = """
INSERT INTO events
SELECT seq + $offset, source_id, channel, message_id || $suffix, dedupe_key + $offset,
       type, event, name,
       user_id || $suffix, anonymous_id || $suffix, previous_id || $suffix,
       group_id, replace(email, '@', $suffix || '@'),
       CASE WHEN phone IS NULL THEN NULL ELSE phone || $digits END,
       device_id || $suffix, advertising_id || $suffix,
       CASE WHEN external_ids IS NULL THEN NULL
            ELSE replace(external_ids, '","type"', $suffix || '","type"') END,
       timestamp, original_timestamp, sent_at, received_at, properties,
       CASE WHEN traits IS NULL THEN NULL
            ELSE replace(traits, '@', $suffix || '@') END, payload
FROM events WHERE seq <= $base
"""


def load_demo(data_dir: Path, people: int) -> None:
    env = {**os.environ, "TESSERA_DATA_DIR": str(data_dir)}
    subprocess.run(
        [sys.executable, "-m", "tessera.cli", "demo", "--people", str(people), "--json"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def measure_pipeline(data_dir: Path) -> dict[str, object]:
    """Incremental: small batches, as the pipeline keeps up with live ingest. Rebuild:
    the whole log again in large batches (`tessera rebuild`)."""
    results: dict[str, object] = {}
    for label, batch in (("incremental", 2_000), ("rebuild", 20_000)):
        settings = Settings(data_dir=data_dir, admin_token="bench", pipeline_batch_size=batch)
        runtime = Runtime.open(settings)
        try:
            results[label] = runtime.pipeline.rebuild().report().model_dump()
            row = runtime.store.fetch_one(
                "SELECT (SELECT count(*) FROM events), "
                "(SELECT count(*) FROM profiles WHERE merged_into IS NULL)"
            )
            assert row is not None
            results["events"], results["profiles"] = row
        finally:
            runtime.close()
    return results


def scale_up(source: Path, target: Path, copies: int) -> None:
    """`copies` times the log: copy k has every identifier suffixed with -ck."""
    shutil.copytree(source, target)
    runtime = Runtime.open(Settings(data_dir=target, admin_token="bench"))
    try:
        base = runtime.store.fetch_one("SELECT max(seq) FROM events")[0]  # type: ignore[index]
        for copy in range(1, copies):
            # Phone numbers get a digit changed rather than a suffix, so they stay valid
            # E.164-shaped strings for the normaliser (the copy's "people" differ).
            runtime.store.execute(
                COPY_SQL, {"offset": base * copy, "suffix": f"-c{copy}", "digits": "", "base": base}
            )
            runtime.store.execute(
                "UPDATE events SET phone = regexp_replace(phone, '(\\d)(\\d)$', ?) "
                "WHERE seq > ? AND phone IS NOT NULL",
                [f"\\1{copy % 10}", base * copy],
            )
        runtime.store.execute("DELETE FROM pipeline_state")
    finally:
        runtime.close()


def measure_lookups(
    data_dir: Path, rate: float, seconds: float, connections: int
) -> dict[str, dict[str, float | int]]:
    settings = Settings(data_dir=data_dir, admin_token="bench")
    runtime = Runtime.open(settings)
    try:
        rows = runtime.store.fetch_all(
            "SELECT type || ':' || value FROM identities WHERE type IN ('email', 'user_id')"
        )
    finally:
        runtime.close()
    rng = random.Random(3)
    paths = [f"/api/profiles/{quote(r[0])}" for r in rng.sample(rows, min(2000, len(rows)))]
    port = free_port()
    server = start_server(data_dir, port, {"TESSERA_ADMIN_TOKEN": "bench-admin-token-0123456789"})
    headers = {"Authorization": "Bearer bench-admin-token-0123456789"}
    out: dict[str, dict[str, float | int]] = {}
    try:
        # Warm-up (discarded): the server loads its memory and the first pages of the log.
        run_open_loop(port, paths[:100], rate=rate, seconds=2, connections=connections,
                      headers=headers)  # fmt: skip
        for label, requests in (
            ("profile", [p + "?events=0" for p in paths]),
            ("profile_with_20_events", paths),
            ("health_baseline", ["/api/health"]),
        ):
            result = run_open_loop(
                port, requests, rate=rate, seconds=seconds, connections=connections,
                headers=headers,
            )  # fmt: skip
            out[label] = result.summary()
    finally:
        stop(server)
    return out


LOOKUP_LABELS = {
    "profile": "profile (`events=0`: from memory)",
    "profile_with_20_events": "profile with its 20 latest events",
    "health_baseline": "`GET /api/health` (the HTTP floor, baseline)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500, help="offered look-ups per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        started = time.perf_counter()
        load_demo(demo, args.people)
        report: dict[str, object] = {"demo_load_seconds": round(time.perf_counter() - started, 1)}
        report["demo"] = measure_pipeline(demo)
        report["lookups"] = measure_lookups(demo, args.rate, args.seconds, args.connections)
        if args.scale > 1:
            big = Path(tmp) / "big"
            scale_up(demo, big, args.scale)
            report[f"demo_x{args.scale}"] = measure_pipeline(big)
    pipeline = Table(
        "pipeline: identity + profiles",
        ["data", "events", "profiles", "live-size batches (2,000) ev/s",
         "rebuild (20,000 per batch) ev/s", "rebuild s"],
    )  # fmt: skip
    for key, value in report.items():
        if isinstance(value, dict) and "rebuild" in value:
            pipeline.add(
                key,
                value["events"],
                value["profiles"],
                value["incremental"]["events_per_second"],
                value["rebuild"]["events_per_second"],
                value["rebuild"]["seconds"],
            )
    lookups = Table(
        f"look-ups: GET /api/profiles/TYPE:VALUE offered open-loop at {args.rate:g}/s over "
        f"{args.connections} connections for {args.seconds:g} s (latency from the scheduled "
        "send; service time from the actual send)",
        ["request", "offered/s", "achieved/s", "p50 ms", "p99 ms", "service p50 ms",
         "service p99 ms", "unanswered", "non-200"],
    )  # fmt: skip
    for label, row in report["lookups"].items():  # type: ignore[attr-defined]
        lookups.add(
            LOOKUP_LABELS[label], row["offered_per_s"], row["achieved_per_s"], row["p50_ms"],
            row["p99_ms"], row["service_p50_ms"], row["service_p99_ms"], row["unanswered"],
            row["non_200"],
        )  # fmt: skip
    emit(report, pipeline, lookups)


if __name__ == "__main__":
    main()
