"""Lookalike benchmark: how well each model finds the demo's hidden groups, and how long
scoring a million profiles takes.

    python benchmarks/lookalike.py [--people 10000] [--profiles 1000000]

1. Quality. The demo company (loaded through the collect API) has hidden groups of people
   (marathoners 4%, new parents 5%, luxury travellers 3%) whose visits drift toward some pages;
   people.csv and truth.csv say who is in which and which records are whose. For each group,
   the seed is the group's *known* profiles (as an advertiser's customer list would be); 20%
   of it is held out and the model learns from the rest. Among all other profiles (anonymous
   cookies and known people alike) we take the top 1% by score and report:
   - recall@1%: the share of the held-out seed found there (what the product reports);
   - precision@1%: the share of the top 1% who really are in the group (from the truth);
   - lift@1%: precision@1% over the group's share among those candidates (random = 1x).
2. Speed. 1,000,000 profiles and 10,000,000 events generated in SQL (benchmarks/segments.py),
   a seed of 1%: time to build the feature matrix from the store, then to fit and score.
Goals on 2 cores: lift@1% >= 5x random; scoring a million profiles in under 30 s.
Prints the tables on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit
from pipeline import load_demo
from segments import generate

from tessera.audiences import lookalike
from tessera.runtime import Runtime
from tessera.settings import Settings
from tessera.store import open_store

NOW = datetime(2030, 1, 1)  # third-party memberships: none in either data set


def profile_people(runtime: Runtime, demo: Path) -> dict[str, str]:
    """Each profile's person: the majority owner of its records (truth.csv)."""
    store = runtime.store
    store.execute(
        "CREATE OR REPLACE TEMP TABLE truth AS SELECT * FROM read_csv(?, header = true, "
        "columns = {'source': 'VARCHAR', 'message_id': 'VARCHAR', 'person_id': 'VARCHAR'})",
        [str(demo / "truth.csv")],
    )
    rows = store.fetch_all(
        "SELECT coalesce(p.merged_into, ep.profile_id), t.person_id, count(*) FROM events e "
        "JOIN sources s ON s.id = e.source_id JOIN truth t ON t.source = s.name "
        "AND t.message_id = e.message_id JOIN event_profiles ep ON ep.seq = e.seq "
        "LEFT JOIN profiles p ON p.profile_id = ep.profile_id GROUP BY ALL"
    )
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for profile_id, person_id, n in rows:
        votes[profile_id][person_id] += n
    return {profile: counts.most_common(1)[0][0] for profile, counts in votes.items()}


def known_profiles(runtime: Runtime) -> set[str]:
    return {
        r[0]
        for r in runtime.store.fetch_all(
            "SELECT DISTINCT coalesce(p.merged_into, i.profile_id) FROM identities i "
            "LEFT JOIN profiles p ON p.profile_id = i.profile_id "
            "WHERE i.type IN ('user_id', 'email', 'phone', 'loyalty_id', 'crm_id')"
        )
    }


def quality(people: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="tessera-lookalike-") as tmp:
        data_dir = Path(tmp) / "data"
        load_demo(data_dir, people)
        runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench"))
        try:
            runtime.pipeline.process()
            owner = profile_people(runtime, data_dir / "demo")
            with (data_dir / "demo" / "people.csv").open() as handle:
                groups = {r["person_id"]: set(filter(None, r["groups"].split("|")))
                          for r in csv.DictReader(handle)}  # fmt: skip
            known = known_profiles(runtime)
            started = time.perf_counter()
            data = lookalike.features(runtime.store, NOW)
            build = time.perf_counter() - started
            for group in ("marathoners", "new-parents", "luxury-travellers"):
                truth = np.array(
                    [group in groups.get(owner.get(p, ""), set()) for p in data.profile_ids]
                )
                seed = truth & np.array([p in known for p in data.profile_ids])
                for method in lookalike.METHODS:
                    rows.append(
                        measure(method, data, seed, truth, group) | {"features_s": round(build, 2)}
                    )
        finally:
            runtime.close()
    return rows


def measure(
    method: str, data: lookalike.Features, seed: np.ndarray, truth: np.ndarray, group: str
) -> dict[str, object]:
    rng = np.random.default_rng(11)
    result = lookalike.holdout_curve(method, data, seed, rng)
    order = result["ranking"]
    at_one = next(p for p in result["curve"] if p["reach_share"] == 0.01)
    top = order[: at_one["reach"]]
    precision = float(truth[top].mean())
    base = float(truth[order].mean())
    return {
        "group": group, "method": method, "profiles": len(data.profile_ids),
        "seed": int(seed.sum()), "held_out": result["held_out"], "top_1pct": len(top),
        "recall_at_1pct": at_one["recall"], "precision_at_1pct": round(precision, 3),
        "base_rate": round(base, 4), "lift_at_1pct": round(precision / base, 2) if base else None,
    }  # fmt: skip


def speed(profiles: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="tessera-lookalike-1m-") as tmp:
        store = open_store(Path(tmp) / "big.duckdb")
        try:
            # No merged profiles: the speed figure stays comparable with earlier runs.
            generate(store, {"profiles": profiles, "events": profiles * 10, "merged": 0})
            started = time.perf_counter()
            data = lookalike.features(store, NOW)
            built = time.perf_counter() - started
            rng = np.random.default_rng(3)
            seed = rng.random(len(data.profile_ids)) < 0.01
            for method in lookalike.METHODS:
                started = time.perf_counter()
                values, _ = lookalike.scores(method, data, seed, rng)
                scored = time.perf_counter() - started
                rows.append({
                    "method": method, "profiles": len(data.profile_ids),
                    "features": len(data.names), "build_features_s": round(built, 2),
                    "fit_and_score_s": round(scored, 2), "total_s": round(built + scored, 2),
                    "scored": int(np.isfinite(values).sum()),
                })  # fmt: skip
        finally:
            store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    args = parser.parse_args()
    found = quality(args.people)
    timed = speed(args.profiles)
    quality_table = Table(
        f"lookalike quality: the demo's hidden groups, {args.people:,} people",
        ["group", "method", "seed", "recall@1%", "precision@1%", "base rate", "lift@1%"],
    )
    for r in found:
        lift = f"{r['lift_at_1pct']}x"
        quality_table.add(r["group"], r["method"], r["seed"], r["recall_at_1pct"],
                          r["precision_at_1pct"], r["base_rate"], lift)  # fmt: skip
    speed_table = Table(
        f"lookalike speed: {args.profiles:,} generated profiles",
        ["method", "profiles", "features", "build features s", "fit and score s", "total s"],
    )
    for r in timed:
        speed_table.add(r["method"], r["profiles"], r["features"], r["build_features_s"],
                        r["fit_and_score_s"], r["total_s"])  # fmt: skip
    emit({"quality": found, "speed": timed}, quality_table, speed_table)


if __name__ == "__main__":
    main()
