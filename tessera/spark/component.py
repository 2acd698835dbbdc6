"""Identity and profile summaries for one connected component of the identifier graph.

Pure: Spark hands each component's events here (in any order) and gets back the rows of
the derived tables. Why a component at a time gives exactly the pipeline's answer:

- every rule of `identity/graph.py` (limits, priorities, the circuit breaker, unmerge
  blocks) looks only at the profiles of the identifiers of the event being stitched, and
  every identifier of one event lies in one component: an event never reads or changes
  another component's profiles;
- profile ids are `profile_id_for(seq, first identifier)` and survivors are chosen by
  (created seq, id): nothing depends on what other components did;
- an alias's previousId is a user_id when a user_id of that value was seen before it
  (else an anonymous_id): Spark resolves that over the whole log first (`identity.py`),
  and the resolved identifier puts the alias in the component of that earlier event, so
  the pipeline's `Unifier`, run here on the component in seq order, decides the same.

The `Unifier` of the pipeline itself does the work: no second implementation of the
rules to drift. Two components stitched together (a hash collision of their labels) are
still exact: the graph would have kept them apart in one run too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from tessera.identity.rules import MergeRules
from tessera.profiles.unifier import COLUMNS, Unifier
from tessera.settings import Settings
from tessera.store import Store

#: the rows one component yields, one wide shape for every table (Spark's applyInPandas
#: returns one schema): `kind` says which table, the other columns as `OUTPUT` names them
OUTPUT = (
    ("kind", "string"), ("seq", "bigint"), ("ordinal", "bigint"),
    ("a", "string"), ("b", "string"), ("c", "string"), ("d", "string"),
    ("e", "string"), ("f", "string"), ("t1", "bigint"), ("t2", "bigint"),
)  # fmt: skip
Row = tuple[Any, ...]


@dataclass(frozen=True)
class IdentityConfig:
    """What the pipeline reads from settings and the store to stitch, as plain values
    (shipped to Spark's Python workers)."""

    settings: Settings
    rules: MergeRules
    #: source id -> (name, trait priority), as `Unifier._source` finds them
    sources: Mapping[str, tuple[str, int]]

    @classmethod
    def build(
        cls,
        settings: Settings,
        rules: MergeRules,
        sources: Iterable[tuple[str, str, str]],
    ) -> IdentityConfig:
        """From the settings, the rules and the exported `sources` (id, name, channel)."""
        priorities = settings.trait_source_priority
        found = {
            source_id: (name, priorities.get(name, priorities.get(channel, 0)))
            for source_id, name, channel in sources
        }
        return cls(settings, rules, found)


class _ComponentUnifier(Unifier):
    """The pipeline's Unifier with the sources given as values instead of a store."""

    def __init__(self, config: IdentityConfig) -> None:
        super().__init__(cast(Store, None), config.settings, config.rules)
        self._known_sources = config.sources

    def _source(self, source_id: str) -> tuple[str, int]:
        return self._known_sources.get(source_id, (source_id, 0))


def unify(config: IdentityConfig, events: list[Row]) -> list[Row]:
    """Stitch one component's events (rows of `profiles.unifier.COLUMNS`) in seq order;
    returns `OUTPUT` rows: `ep` (seq -> profile), `id` (a link), `pr` (a profile),
    `su` (a live profile's summary) and `le` (a ledger entry, numbered within its seq)."""
    unifier = _ComponentUnifier(config)
    graph = unifier.graph
    out: list[Row] = []
    events = sorted(events, key=lambda row: row[0])
    for row in events:
        before = len(graph.ledger)
        attributed, _touched = unifier.apply([row])
        for seq, profile in attributed:
            out.append(("ep", seq, 0, profile, None, None, None, None, None, None, None))
        for ordinal, entry in enumerate(graph.ledger[before:]):
            out.append((
                "le", entry.seq, ordinal, entry.kind, entry.profile,
                str(entry.identifier) if entry.identifier else None,
                str(entry.other) if entry.other else None,
                entry.other_profile, entry.rule, None, None,
            ))  # fmt: skip
    for ordinal, (identifier, profile, seq) in enumerate(graph.new_links):
        link = (identifier.type, identifier.value, profile)
        out.append(("id", seq, ordinal, *link, None, None, None, None, None))
    for profile, created in graph.created.items():
        out.append((
            "pr", created, 0, profile, graph.redirect.get(profile), graph.flagged.get(profile),
            None, None, None, None, None,
        ))  # fmt: skip
        if profile in graph.redirect:
            continue
        summary = unifier.summary(profile)
        out.append((
            "su", summary.event_count, 0, profile,
            orjson.dumps(sorted(summary.channels)).decode(),
            orjson.dumps(summary.trait_values()).decode(),
            summary.state_json(),
            orjson.dumps(summary.consent_values()).decode(),
            None, summary.first_seen, summary.last_seen,
        ))  # fmt: skip
    return out


def columns() -> tuple[str, ...]:
    """The input columns `unify` reads, in order (the pipeline's batch columns)."""
    return COLUMNS
