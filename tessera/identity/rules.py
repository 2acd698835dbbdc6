"""Merge rules per identifier type, as Segment Unify has them: a limit and a priority.

A limit caps how many identifiers of a type one profile may hold (one user_id, five
e-mails); the priority says which identifiers an event keeps when it cannot keep all
of them. The circuit breaker caps a profile's total size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tessera.identity.identifiers import Identifier


@dataclass(frozen=True, slots=True)
class TypeRule:
    #: most identifiers of this type one profile may hold; None is unlimited
    limit: int | None
    #: lower wins: an event keeps its highest-priority identifiers first
    priority: int


DEFAULT_RULES: dict[str, TypeRule] = {
    "user_id": TypeRule(1, 1),
    "email": TypeRule(5, 2),
    "phone": TypeRule(5, 3),
    "crm_id": TypeRule(1, 4),
    "loyalty_id": TypeRule(3, 5),
    "device_id": TypeRule(None, 6),
    "advertising_id": TypeRule(None, 7),
    "anonymous_id": TypeRule(None, 8),
    "cookie_id": TypeRule(None, 9),
}
#: A custom type nobody configured: unlimited, after every built-in but cookies.
CUSTOM_RULE = TypeRule(None, 20)


@dataclass(frozen=True)
class MergeRules:
    types: Mapping[str, TypeRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    #: the circuit breaker: a profile with this many identifiers absorbs no more
    max_identifiers: int = 100
    #: pairs a person said are not the same (from unmerge): never in one profile
    blocked: Mapping[Identifier, frozenset[Identifier]] = field(default_factory=dict)
    #: probabilistic links in force (identity/matching.py): identifier -> (partner, the
    #: ledger's rule text naming the match); linked once both are known, if the rules allow
    matches: Mapping[Identifier, tuple[tuple[Identifier, str], ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        overrides: Mapping[str, Mapping[str, int | None]] | None = None,
        max_identifiers: int = 100,
        blocked_pairs: Iterable[tuple[Identifier, Identifier]] = (),
        match_pairs: Iterable[tuple[Identifier, Identifier, str]] = (),
    ) -> MergeRules:
        types = dict(DEFAULT_RULES)
        for kind, rule in (overrides or {}).items():
            base = types.get(kind, CUSTOM_RULE)
            limit = rule.get("limit", base.limit)
            types[kind] = TypeRule(limit, int(rule.get("priority") or base.priority))
        blocked: dict[Identifier, set[Identifier]] = {}
        for first, second in blocked_pairs:
            blocked.setdefault(first, set()).add(second)
            blocked.setdefault(second, set()).add(first)
        matches: dict[Identifier, list[tuple[Identifier, str]]] = {}
        for first, second, label in match_pairs:
            matches.setdefault(first, []).append((second, label))
            matches.setdefault(second, []).append((first, label))
        return cls(
            types,
            max_identifiers,
            {k: frozenset(v) for k, v in blocked.items()},
            {k: tuple(v) for k, v in matches.items()},
        )

    def rule(self, kind: str) -> TypeRule:
        return self.types.get(kind, CUSTOM_RULE)

    def priority(self, identifier: Identifier) -> tuple[int, str, str]:
        return (self.rule(identifier.type).priority, identifier.type, identifier.value)
