"""A profile's summary, kept up to date event by event: traits, consent, channels, times.

Pure. Traits merge by event time, last write wins, with an optional per-source
priority first (the CRM beats the web form); every trait remembers where it came from.
Merging two profiles merges their summaries with the same rule, so the order in which
events arrive and profiles merge does not change the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: (priority, timestamp µs, seq): the larger wins
Rank = tuple[int, int, int]


@dataclass
class TraitValue:
    value: Any
    rank: Rank
    source: str

    def to_json(self) -> list[Any]:
        return [self.value, *self.rank, self.source]

    @classmethod
    def from_json(cls, raw: list[Any]) -> TraitValue:
        return cls(raw[0], (raw[1], raw[2], raw[3]), raw[4])


@dataclass
class Summary:
    first_seen: int | None = None
    last_seen: int | None = None
    event_count: int = 0
    channels: set[str] = field(default_factory=set)
    traits: dict[str, TraitValue] = field(default_factory=dict)
    consent: dict[str, TraitValue] = field(default_factory=dict)

    def add_event(
        self,
        *,
        seq: int,
        timestamp: int,
        channel: str,
        source: str,
        priority: int,
        traits: dict[str, Any] | None,
        consent: dict[str, Any] | None,
    ) -> None:
        self.event_count += 1
        self.first_seen = timestamp if self.first_seen is None else min(self.first_seen, timestamp)
        self.last_seen = timestamp if self.last_seen is None else max(self.last_seen, timestamp)
        self.channels.add(channel)
        rank = (priority, timestamp, seq)
        if traits:
            _offer(self.traits, traits, rank, source)
        if consent:
            _offer(self.consent, consent, rank, source)

    def absorb(self, other: Summary) -> None:
        """Fold another profile's summary into this one (a merge)."""
        self.event_count += other.event_count
        for moment in (other.first_seen, other.last_seen):
            if moment is not None:
                self.first_seen = (
                    moment if self.first_seen is None else min(self.first_seen, moment)
                )
                self.last_seen = moment if self.last_seen is None else max(self.last_seen, moment)
        self.channels |= other.channels
        for mine, theirs in ((self.traits, other.traits), (self.consent, other.consent)):
            for key, candidate in theirs.items():
                current = mine.get(key)
                if current is None or candidate.rank > current.rank:
                    mine[key] = candidate

    def trait_values(self) -> dict[str, Any]:
        return {key: item.value for key, item in sorted(self.traits.items())}

    def consent_values(self) -> dict[str, Any]:
        return {key: item.value for key, item in sorted(self.consent.items())}

    def state_json(self) -> str:
        return orjson.dumps(
            {
                "traits": {k: v.to_json() for k, v in self.traits.items()},
                "consent": {k: v.to_json() for k, v in self.consent.items()},
            }
        ).decode()

    @classmethod
    def from_row(
        cls,
        first_seen: int | None,
        last_seen: int | None,
        event_count: int,
        channels: str,
        state: str,
    ) -> Summary:
        parsed = orjson.loads(state)
        return cls(
            first_seen,
            last_seen,
            event_count,
            set(orjson.loads(channels)),
            {k: TraitValue.from_json(v) for k, v in parsed["traits"].items()},
            {k: TraitValue.from_json(v) for k, v in parsed["consent"].items()},
        )


def _offer(target: dict[str, TraitValue], values: dict[str, Any], rank: Rank, source: str) -> None:
    for key, value in values.items():
        current = target.get(key)
        if current is None or rank > current.rank:
            target[key] = TraitValue(value, rank, source)
