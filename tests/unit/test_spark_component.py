"""Identity a component at a time equals identity over the whole log (`spark/component.py`).

What Spark does, in plain Python: read each event's identifiers, resolve aliases over the
whole log, group events by connected component (union-find here, label propagation on
Spark), stitch each component alone, and put the pieces together. Hypothesis draws logs
with shared identifiers, junk, aliases and limits that bite; the pieces must equal one run
over the whole log: profile ids, attributions, links, profiles, summaries and the ledger.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.identity.identifiers import JunkRules, read_identifiers
from tessera.identity.rules import MergeRules
from tessera.profiles.unifier import COLUMNS
from tessera.settings import Settings
from tessera.spark.component import IdentityConfig, unify

SETTINGS = Settings()
RULES = MergeRules.build({"email": {"limit": 1}, "user_id": {"limit": 1}}, max_identifiers=4)
CONFIG = IdentityConfig.build(SETTINGS, RULES, [("src_web", "web", "web")])

maybe = st.none() | st.just("")
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["identify", "track", "alias", "page"]),
        "user_id": maybe | st.sampled_from(["u1", "u2", "u3", "null"]),
        "anonymous_id": maybe | st.sampled_from(["a1", "a2", "a3", "a4"]),
        "email": maybe | st.sampled_from(["e1@x.com", "E1@X.com ", "e2@x.com", "test@test.com"]),
        "previous_id": maybe | st.sampled_from(["u1", "u2", "a1", "a2"]),
        "traits": st.none() | st.sampled_from(['{"plan": "pro"}', '{"plan": "free"}']),
    }
)


def _rows(drawn: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows = []
    for index, event in enumerate(drawn, start=1):
        values = {
            "seq": index, "type": event["type"], "source_id": "src_web", "channel": "web",
            "user_id": event["user_id"], "anonymous_id": event["anonymous_id"],
            "previous_id": event["previous_id"] if event["type"] == "alias" else None,
            "email": event["email"], "phone": None, "device_id": None, "advertising_id": None,
            "external_ids": None, "timestamp": 1_700_000_000_000_000 + index,
            "traits": event["traits"], "country": None, "consent": None,
            "event": "Viewed" if event["type"] == "track" else None, "tcf": None,
        }  # fmt: skip
        rows.append(tuple(values[c] for c in COLUMNS))
    return rows


def _components(rows: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """Spark's grouping (identity.py), in Python."""
    junk = JunkRules.build(SETTINGS.identity_junk_values, SETTINGS.identity_junk_patterns)

    def keys(row: tuple[Any, ...], target: str | None) -> list[str]:
        event = dict(zip(COLUMNS, row, strict=True))
        found = read_identifiers(event, junk, None, alias_target=target).identifiers
        return [str(i) for i in found]

    base = {row[0]: keys(row, None) for row in rows}
    first_user: dict[str, int] = {}
    for seq in sorted(base):
        for key in base[seq]:
            if key.startswith("user_id:"):
                first_user.setdefault(key, seq)
    resolved: dict[int, list[str]] = {}
    for row in rows:
        event = dict(zip(COLUMNS, row, strict=True))
        previous = event["previous_id"]
        if event["type"] == "alias" and previous:
            seen = first_user.get(f"user_id:{previous.strip()}")
            target = "user_id" if seen is not None and seen < row[0] else "anonymous_id"
            resolved[row[0]] = keys(row, target)
        else:
            resolved[row[0]] = base[row[0]]
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for ids in resolved.values():
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        ids = resolved[row[0]]
        groups.setdefault(find(ids[0]) if ids else f"#{row[0]}", []).append(row)
    return list(groups.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(events, max_size=25))
def test_stitching_per_component_equals_stitching_the_whole_log(
    drawn: list[dict[str, Any]],
) -> None:
    rows = _rows(drawn)
    whole = _comparable(unify(CONFIG, rows))
    pieces = _comparable([out for group in _components(rows) for out in unify(CONFIG, group)])
    assert pieces == whole


def _comparable(output: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Sorted; a link's ordinal (its place among the component's links) set aside. Ledger
    entries are numbered within their event, which is the same in both."""
    return sorted(((r[0], r[1], 0, *r[3:]) if r[0] == "id" else r for r in output), key=repr)
