"""Identity accuracy on the demo company: pairwise precision, recall and F1 against truth.

    python benchmarks/identity_accuracy.py [--people 10000] [--seed 42] [--data-dir DIR]

Generates the demo (through the real collect API and imports, as `tessera demo` does)
unless --data-dir names one that holds it, runs the pipeline, and compares the profile
each event landed in with the person who really sent it (`demo/truth.csv`).

Pairwise: every pair of events of the same profile is a predicted match; every pair of
events of the same person a true match. Precision = right predicted pairs / predicted
pairs; recall = right predicted pairs / true pairs. The misses are then explained by
what the split-off profiles hold, and the wrong merges by the profiles holding several
people.

The ceiling (the best recall deterministic identifiers allow) is computed twice over the
raw identifier columns of the event log: with the benchmark's own normalisation, written
here from the platforms' published matching rules and independent of Tessera's code, and
with Tessera's normaliser. If the second is lower, Tessera's normalisation loses links the
published rules make (a gap the old ceiling, computed with Tessera's normaliser alone,
could never show); the per-type table says where. Tessera's recall is reported beside
both. Prints the tables on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit

from tessera.identity.identifiers import JunkRules, identifiers_of
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
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE scored AS
        SELECT t.person_id, e.seq,
               coalesce(p.merged_into, ep.profile_id, 'none:' || e.seq) AS profile_id
        FROM read_csv($truth, header = true, all_varchar = true) t
        JOIN sources s ON s.name = t.source
        JOIN events e ON e.source_id = s.id AND e.message_id = t.message_id
        LEFT JOIN event_profiles ep ON ep.seq = e.seq
        LEFT JOIN profiles p ON p.profile_id = ep.profile_id""",
        {"truth": str(truth)},
    )
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
    ceilings = reachable_recall(runtime, true)
    ceiling = ceilings["published_rules"]
    return {
        "events": int(events),
        "people": int(persons),
        "profiles": int(profiles),
        "unattributed_events": int(unattributed),
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "reachable_recall": round(ceiling, 5),
        "reachable_recall_tessera_normaliser": round(ceilings["tessera"], 5),
        "recall_of_reachable": round(recall / ceiling, 5) if ceiling else 1.0,
        "normalisation": normalisation_differences(runtime),
        "misses": explain_misses(runtime),
        "wrong_merges": explain_wrong_merges(runtime),
    }


# -- the ceiling, with a normalisation independent of Tessera's --------------------------

# ITU-T E.164 country calling codes and national trunk prefixes (dropped before the country
# code is added; Spain, Italy and the Nordics have none, Italy keeps its leading 0).
CALLING = {"FR": ("33", "0"), "DE": ("49", "0"), "ES": ("34", ""), "GB": ("44", "0"),
           "IT": ("39", ""), "NL": ("31", "0"), "BE": ("32", "0"), "PT": ("351", ""),
           "IE": ("353", "0"), "CH": ("41", "0"), "AT": ("43", "0"), "SE": ("46", "0"),
           "DK": ("45", ""), "NO": ("47", ""), "PL": ("48", ""), "US": ("1", "1"),
           "CA": ("1", "1")}  # fmt: skip
_NOT_DIGITS = re.compile(r"\D")
_ID_COLUMNS = ("user_id", "anonymous_id", "email", "phone", "device_id", "advertising_id")
Normaliser = Callable[[dict[str, Any]], Iterable[tuple[str, str]]]


def published_email(raw: str) -> str | None:
    """Google Ads Customer Match and Meta Custom Audiences: trim surrounding whitespace and
    lower-case; Google also drops the dots of the local part of gmail.com and
    googlemail.com addresses (the same mailbox)."""
    value = raw.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain:
        return None
    if domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
    return f"{local}@{domain}"


def published_phone(raw: str, country: str | None) -> str | None:
    """E.164, the form Google and Meta match phones in: digits only; `+` or `00` starts an
    international number; otherwise the national trunk prefix gives way to the calling
    code of the event's country. 8 to 15 digits with the country code."""
    text = raw.strip()
    digits = _NOT_DIGITS.sub("", text)
    if text.startswith("+"):
        number = digits
    elif digits.startswith("00"):
        number = digits[2:]
    else:
        code, trunk = CALLING.get((country or "").upper(), (None, ""))
        if code is None:
            return None
        if trunk and digits.startswith(trunk):
            digits = digits[len(trunk) :]
        number = code + digits
    return "+" + number if 8 <= len(number) <= 15 else None


def published_identifiers(event: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(type, value) pairs one event carries, by the published rules above; advertising
    and device ids compared case-blind (an IDFA is shown upper-case, a GAID lower-case:
    the same UUID), every other id exactly after trimming."""
    for kind in _ID_COLUMNS:
        raw = event.get(kind)
        if not isinstance(raw, str) or not raw.strip():
            continue
        if kind == "email":
            value = published_email(raw)
        elif kind == "phone":
            value = published_phone(raw, event.get("country"))
        elif kind in ("advertising_id", "device_id"):
            value = raw.strip().lower()
        else:
            value = raw.strip()
        if value:
            yield kind, value
    for item in orjson.loads(event["external_ids"] or "[]"):
        kind, raw = str(item.get("type", "")).strip().lower(), item.get("id")
        if isinstance(raw, str) and raw.strip():
            value = published_email(raw) if kind == "email" else raw.strip()
            if value:
                yield kind, value


_NO_JUNK = JunkRules(frozenset(), ())


def tessera_identifiers(event: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """The same event through Tessera's normaliser (its junk list off: junk is decided
    from the truth for both, so only the normalisation differs)."""
    return [(i.type, i.value) for i in identifiers_of(event, _NO_JUNK, None)]


def scored_events(runtime: Runtime) -> list[dict[str, Any]]:
    """The raw identifier columns (as sent: the log keeps them so) of the scored events."""
    return runtime.store.fetch_dicts(f"""
        SELECT e.seq, s.person_id, {", ".join("e." + c for c in _ID_COLUMNS)}, e.external_ids,
               json_extract_string(e.traits, '$.country') AS country
        FROM events e JOIN scored s ON s.seq = e.seq""")


def reachable_recall(runtime: Runtime, true_pairs: float) -> dict[str, float]:
    """The best recall deterministic identifiers allow: within each real person, events
    that share a normalised identifier, transitively. No rule, no limit and no wrong
    merge: an upper bound for any deterministic resolver. A value the truth shows on
    several people (a switchboard number, a placeholder) links no one: any resolver that
    used it would merge people. Once with the published rules, once with Tessera's."""
    events = scored_events(runtime)
    return {
        name: _ceiling(events, normaliser, true_pairs)
        for name, normaliser in (("published_rules", published_identifiers),
                                 ("tessera", tessera_identifiers))
    }  # fmt: skip


def _ceiling(events: list[dict[str, Any]], normaliser: Normaliser, true_pairs: float) -> float:
    carried = [(event, list(normaliser(event))) for event in events]
    people: dict[tuple[str, str], set[str]] = {}
    for event, identifiers in carried:
        for identifier in identifiers:
            people.setdefault(identifier, set()).add(event["person_id"])
    parent: dict[Any, Any] = {}

    def find(node: Any) -> Any:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for event, identifiers in carried:
        for identifier in identifiers:
            if len(people[identifier]) == 1:
                parent[find(("event", event["seq"]))] = find(identifier)
    sizes: dict[Any, int] = {}
    for event in events:
        root = find(("event", event["seq"]))
        sizes[root] = sizes.get(root, 0) + 1
    reachable = sum(n * (n - 1) / 2 for n in sizes.values())
    return reachable / true_pairs if true_pairs else 1.0


def normalisation_differences(runtime: Runtime) -> list[dict[str, Any]]:
    """Per identifier type, over the distinct raw values: those the published rules accept
    and Tessera refuses (and the reverse), and the published rules' values that Tessera
    splits into several (and the reverse: Tessera joins what the rules keep apart)."""
    found: dict[str, dict[str, Any]] = {}
    for event in scored_events(runtime):
        for kind in _ID_COLUMNS:
            raw = event.get(kind)
            if not isinstance(raw, str) or not raw.strip():
                continue
            single = {k: None for k in _ID_COLUMNS} | {
                kind: raw,
                "country": event.get("country"),
                "external_ids": None,
            }
            ours = dict(published_identifiers(single)).get(kind)
            theirs = dict(tessera_identifiers(single)).get(kind)
            row = found.setdefault(kind, {"raw": {}, "by_rule": {}, "by_tessera": {}})
            row["raw"][(raw, event.get("country"))] = (ours, theirs)
    rows = []
    for kind, seen in sorted(found.items()):
        by_rule: dict[str, set[Any]] = {}
        by_tessera: dict[str, set[Any]] = {}
        for ours, theirs in seen["raw"].values():
            if ours is not None:
                by_rule.setdefault(ours, set()).add(theirs)
            if theirs is not None:
                by_tessera.setdefault(theirs, set()).add(ours)
        pairs = seen["raw"].values()
        rows.append({
            "type": kind, "raw_values": len(seen["raw"]),
            "refused_by_tessera_only": sum(o is not None and t is None for o, t in pairs),
            "refused_by_rules_only": sum(o is None and t is not None for o, t in pairs),
            "rule_values_tessera_splits": sum(len(v) > 1 for v in by_rule.values()),
            "tessera_values_rules_split": sum(len(v) > 1 for v in by_tessera.values()),
        })  # fmt: skip
    return rows


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
            report["pipeline"] = run.report().model_dump()
            report["seconds"] = round(time.perf_counter() - started, 2)
        finally:
            runtime.close()
    summary = Table(
        f"identity accuracy: {report['events']:,} events of {report['people']:,} people in "
        f"{report['profiles']:,} profiles ({report['unattributed_events']:,} unattributed)",
        ["precision", "recall", "F1", "ceiling (published rules)",
         "ceiling (Tessera's normaliser)", "recall of the ceiling"],
    )  # fmt: skip
    summary.add(report["precision"], report["recall"], report["f1"], report["reachable_recall"],
                report["reachable_recall_tessera_normaliser"],
                f"{report['recall_of_reachable']:.1%}")  # fmt: skip
    tables = [summary]
    for title, rows in (
        ("normalisation: the published rules beside Tessera's, distinct raw values",
         report["normalisation"]),
        ("recall misses: what split-off profiles hold", report["misses"]),
        ("wrong merges", report["wrong_merges"]),
    ):  # fmt: skip
        table = Table(title, list(rows[0]) if rows else ["none"])
        for row in rows:
            table.add(*(str(v)[:80] for v in row.values()))
        tables.append(table)
    emit(report, *tables)


if __name__ == "__main__":
    main()
