"""Profile summaries: traits by time, source priority, merges in any order."""

from __future__ import annotations

from itertools import permutations
from typing import Any

from tessera.profiles.summary import Summary


def add(
    summary: Summary,
    seq: int,
    ts: int,
    traits: dict[str, Any],
    source: str = "web",
    priority: int = 0,
) -> None:
    summary.add_event(
        seq=seq,
        timestamp=ts,
        channel=source,
        source=source,
        priority=priority,
        traits=traits,
        consent=None,
    )


def test_last_write_wins_by_event_time_not_arrival() -> None:
    s = Summary()
    add(s, 1, 200, {"city": "Lyon"})
    add(s, 2, 100, {"city": "Paris"})  # arrived later, happened earlier
    assert s.trait_values() == {"city": "Lyon"}


def test_source_priority_beats_recency() -> None:
    s = Summary()
    add(s, 1, 100, {"name": "Jane Doe"}, source="crm", priority=10)
    add(s, 2, 999, {"name": "jd"}, source="web")
    assert s.trait_values() == {"name": "Jane Doe"}
    assert s.traits["name"].source == "crm"


def test_absorbing_is_order_independent() -> None:
    parts = []
    for n, (ts, city) in enumerate([(10, "A"), (30, "C"), (20, "B")]):
        part = Summary()
        add(part, n, ts, {"city": city, f"k{n}": n})
        parts.append(part)
    results = set()
    for order in permutations(parts):
        total = Summary()
        for part in order:
            total.absorb(part)
        results.add(
            (str(total.trait_values()), total.event_count, total.first_seen, total.last_seen)
        )
    assert len(results) == 1
    assert "'city': 'C'" in results.pop()[0]


def test_state_round_trips() -> None:
    s = Summary()
    add(s, 1, 100, {"a": [1, {"b": 2}]}, source="crm", priority=3)
    again = Summary.from_row(s.first_seen, s.last_seen, s.event_count, '["crm"]', s.state_json())
    assert again.traits == s.traits
