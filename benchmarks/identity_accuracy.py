"""Identity accuracy on the demo company: pairwise precision, recall and F1 against truth.

    python benchmarks/identity_accuracy.py [--people 10000] [--seed 42] [--data-dir DIR] [--json]

Generates the demo (through the real collect API and imports, as `tessera demo` does)
unless --data-dir names one that holds it, runs the pipeline, and compares the profile
each event landed in with the person who really sent it (`demo/truth.csv`).

Pairwise: every pair of events of the same profile is a predicted match; every pair of
events of the same person a true match. Precision = right predicted pairs / predicted
pairs; recall = right predicted pairs / true pairs. The misses are then explained by
what the split-off profiles hold, and the wrong merges by the profiles holding several
people.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tessera.runtime import Runtime
from tessera.settings import Settings

PAIRS = "sum(n * (n - 1) / 2)"


def load_demo(data_dir: Path, people: int, seed: int) -> None:
    env = {**os.environ, "TESSERA_DATA_DIR": str(data_dir)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tessera.cli",
            "demo",
            "--people",
            str(people),
            "--seed",
            str(seed),
            "--json",
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def measure(runtime: Runtime, truth: Path) -> dict[str, Any]:
    store = runtime.store
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE scored AS
        SELECT t.person_id, e.seq,
               coalesce(p.merged_into, ep.profile_id, 'none:' || e.seq) AS profile_id
        FROM read_csv('{truth}', header = true, all_varchar = true) t
        JOIN sources s ON s.name = t.source
        JOIN events e ON e.source_id = s.id AND e.message_id = t.message_id
        LEFT JOIN event_profiles ep ON ep.seq = e.seq
        LEFT JOIN profiles p ON p.profile_id = ep.profile_id""")
    row = store.fetch_one(f"""
        SELECT (SELECT {PAIRS} FROM (SELECT count(*) n FROM scored GROUP BY profile_id, person_id)),
               (SELECT {PAIRS} FROM (SELECT count(*) n FROM scored GROUP BY profile_id)),
               (SELECT {PAIRS} FROM (SELECT count(*) n FROM scored GROUP BY person_id)),
               (SELECT count(*) FROM scored),
               (SELECT count(*) FROM scored WHERE profile_id LIKE 'none:%'),
               (SELECT count(DISTINCT person_id) FROM scored),
               (SELECT count(DISTINCT profile_id) FROM scored
                WHERE profile_id NOT LIKE 'none:%')""")
    assert row is not None
    right, predicted, true, events, unattributed, persons, profiles = (float(v) for v in row)
    precision = right / predicted if predicted else 1.0
    recall = right / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ceiling = reachable_recall(runtime, true)
    return {
        "events": int(events),
        "people": int(persons),
        "profiles": int(profiles),
        "unattributed_events": int(unattributed),
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "reachable_recall": round(ceiling, 5),
        "recall_of_reachable": round(recall / ceiling, 5) if ceiling else 1.0,
        "misses": explain_misses(runtime),
        "wrong_merges": explain_wrong_merges(runtime),
    }


def reachable_recall(runtime: Runtime, true_pairs: float) -> float:
    """The best recall deterministic identifiers allow: within each real person, events
    that share a (normalised, non-junk) identifier, transitively. No rule, no limit and
    no wrong merge: an upper bound for any deterministic resolver."""
    from tessera.identity.identifiers import JunkRules, identifiers_of
    from tessera.profiles.unifier import COLUMNS, read_batch

    person_of = dict(runtime.store.fetch_all("SELECT seq, person_id FROM scored"))
    parent: dict[Any, Any] = {}

    def find(node: Any) -> Any:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    junk = JunkRules.build()
    last = 0
    while rows := read_batch(runtime.store, last, 50_000):
        for row in rows:
            event = dict(zip(COLUMNS, row, strict=True))
            person = person_of.get(event["seq"])
            if person is None:
                continue
            for identifier in identifiers_of(event, junk, None):
                parent[find(("event", event["seq"]))] = find((person, identifier))
        last = rows[-1][0]
    sizes: dict[Any, int] = {}
    for seq in person_of:
        root = find(("event", seq))
        sizes[root] = sizes.get(root, 0) + 1
    reachable = sum(n * (n - 1) / 2 for n in sizes.values())
    return reachable / true_pairs if true_pairs else 1.0


def explain_misses(runtime: Runtime) -> list[dict[str, Any]]:
    """Each person's largest profile is 'theirs'; the others are split-offs. What do the
    split-offs hold? That says which identifier never linked them."""
    return runtime.store.fetch_dicts("""
        WITH cells AS (
            SELECT person_id, profile_id, count(*) AS n FROM scored GROUP BY ALL),
        kinds AS (
            SELECT coalesce(p.merged_into, i.profile_id) AS profile_id,
                   string_agg(DISTINCT i.type, '+' ORDER BY i.type) AS identifier_types
            FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id GROUP BY 1),
        ranked AS (
            -- a person's main profile: the one with their user_id, else their largest
            SELECT c.*, k.identifier_types, row_number() OVER (
                PARTITION BY c.person_id
                ORDER BY coalesce(k.identifier_types LIKE '%user_id%', false) DESC,
                         c.n DESC, c.profile_id) AS r
            FROM cells c LEFT JOIN kinds k ON k.profile_id = c.profile_id)
        SELECT coalesce(identifier_types, 'no identifier') AS split_off_profile_holds,
               count(*) AS profiles, sum(n) AS events
        FROM ranked WHERE r > 1 GROUP BY 1 ORDER BY events DESC LIMIT 10""")


def explain_wrong_merges(runtime: Runtime) -> list[dict[str, Any]]:
    return runtime.store.fetch_dicts("""
        WITH mixed AS (
            SELECT profile_id, count(DISTINCT person_id) AS people, count(*) AS events
            FROM scored GROUP BY 1 HAVING count(DISTINCT person_id) > 1)
        SELECT m.profile_id, m.people, m.events,
               (SELECT string_agg(i.type || ':' || i.value, ' ') FROM identities i
                LEFT JOIN profiles p ON p.profile_id = i.profile_id
                WHERE coalesce(p.merged_into, i.profile_id) = m.profile_id) AS identifiers
        FROM mixed m ORDER BY m.people DESC LIMIT 10""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        if not (data_dir / "demo" / "truth.csv").exists():
            load_demo(data_dir, args.people, args.seed)
        runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench"))
        try:
            started = time.perf_counter()
            run = runtime.pipeline.rebuild()
            report = measure(runtime, data_dir / "demo" / "truth.csv")
            report["pipeline"] = run.to_dict()
            report["seconds"] = round(time.perf_counter() - started, 2)
        finally:
            runtime.close()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"events {report['events']:,}  people {report['people']:,}  "
        f"profiles {report['profiles']:,}  unattributed {report['unattributed_events']:,}"
    )
    console.print(
        f"precision [bold]{report['precision']}[/]  recall [bold]{report['recall']}[/]"
        f"  F1 [bold]{report['f1']}[/]  reachable recall {report['reachable_recall']}"
        f" (we reach {report['recall_of_reachable']:.1%} of it)"
    )
    for title, rows in (
        ("recall misses: what split-off profiles hold", report["misses"]),
        ("wrong merges", report["wrong_merges"]),
    ):
        table = Table(title=title)
        for column in rows[0] if rows else {"none": ""}:
            table.add_column(column)
        for row in rows:
            table.add_row(*(str(v)[:80] for v in row.values()))
        console.print(table)


if __name__ == "__main__":
    main()
