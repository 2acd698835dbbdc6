"""The reference interpreter: each condition evaluated against one profile in memory
(Unomi's "one condition, two interpretations"). The SQL compiler answers for everyone at
once and is what Tessera runs; this answers for one person from their facts, written
independently of the SQL, so `tests/integration/test_segment_agreement.py` can check the
compiler against it, condition by condition, on random segments and random event logs.
It lives with the tests because nothing in Tessera serves from it (docs/segments.md says
why).

The semantics follow the SQL exactly: trait values are compared as JSON text (numbers
cast to float, booleans as "true"/"false", times cast to timestamps); a condition on a
missing trait is false; count and sum of nothing are 0, avg/min/max of nothing are
unknown, so any comparison with them is false.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never

import orjson

from tessera.identity.identifiers import ANONYMOUS_TYPES, SYNC_PREFIX
from tessera.profiles.consent import ENRICHMENT_PURPOSE, allows
from tessera.segments.tree import (
    Aggregate,
    And,
    Compare,
    Did,
    EventRef,
    Filter,
    HasIdentifier,
    HasThirdParty,
    InLookalike,
    InSegment,
    Node,
    Not,
    Or,
    Population,
    RelativeTime,
    SeenOn,
    Value,
    Window,
)


@dataclass(frozen=True)
class EventFact:
    name: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProfileFacts:
    traits: dict[str, Any] = field(default_factory=dict)
    computed: dict[str, Any] = field(default_factory=dict)
    events: list[EventFact] = field(default_factory=list)  # track events
    identifier_types: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    #: ids and lower-case paths of the live third-party segments (and their ancestors)
    third_party: set[str] = field(default_factory=set)
    lookalikes: set[str] = field(default_factory=set)
    #: the merged consent record, and the policy of third-party enrichment's purpose
    consent: dict[str, Any] = field(default_factory=dict)
    enrichment_policy: str = "required"


def holds(node: Node, facts: ProfileFacts, now: datetime) -> bool:
    """Whether this profile is in the segment at `now`."""
    match node:
        case And():
            return all(holds(i, facts, now) for i in node.items)
        case Or():
            return any(holds(i, facts, now) for i in node.items)
        case Not():
            return not holds(node.item, facts, now)
        case Compare():
            return _compare_trait(node, facts, now)
        case Did():
            return any(True for _ in _matching(facts, node.event, node.window, now))
        case Aggregate():
            return _aggregate(node, facts, now)
        case HasIdentifier():
            return node.type in facts.identifier_types
        case HasThirdParty():
            # Only where consent allows enrichment's purpose: the one rule, `allows`.
            reference = node.reference
            member = reference.lower() in facts.third_party or reference in facts.third_party
            return member and allows(facts.consent, ENRICHMENT_PURPOSE, facts.enrichment_policy)
        case Population():
            anonymous = bool(facts.identifier_types) and all(
                kind in ANONYMOUS_TYPES or kind.startswith(SYNC_PREFIX)
                for kind in facts.identifier_types
            )
            return anonymous if node.who == "anonymous" else not anonymous
        case SeenOn():
            return node.channel in facts.channels
        case InSegment():
            return node.name in facts.segments
        case InLookalike():
            return node.name in facts.lookalikes
        case _:
            assert_never(node)


def _compare_trait(node: Compare, facts: ProfileFacts, now: datetime) -> bool:
    source = facts.traits if node.source == "traits" else facts.computed
    if node.name not in source or source[node.name] is None:
        return False
    if node.op == "exists":
        return True
    return _test(_as_text(source[node.name]), node.op, node.value, now) is True


def _aggregate(node: Aggregate, facts: ProfileFacts, now: datetime) -> bool:
    events = list(_matching(facts, node.event, node.window, now))
    if node.function == "count":
        current: float | None = float(len(events))
    else:
        values = [
            v
            for v in (_number(_as_text(e.properties.get(node.property or ""))) for e in events)
            if v is not None
        ]
        if node.function == "sum":
            current = float(sum(values))
        elif not values:
            current = None
        else:
            current = {
                "avg": lambda: sum(values) / len(values),
                "min": lambda: min(values),
                "max": lambda: max(values),
            }[node.function]()
    return current is not None and _compare(current, node.op, node.value)


def _matching(facts: ProfileFacts, event: EventRef, window: Window | None, now: datetime):  # type: ignore[no-untyped-def]
    for fact in facts.events:
        if fact.name != event.name or not _in_window(fact.timestamp, window, now):
            continue
        if all(_filter(fact, f, now) for f in event.filters):
            yield fact


def _filter(fact: EventFact, item: Filter, now: datetime) -> bool:
    if item.source == "product":
        # Product conditions read the catalogue, which these facts do not carry; they are
        # checked against SQL by tests/integration/test_catalog.py instead.
        raise NotImplementedError("the interpreter has no catalogue for product conditions")
    raw = fact.properties.get(item.property)
    return raw is not None and _test(_as_text(raw), item.op, item.value, now) is True


def _in_window(moment: datetime, window: Window | None, now: datetime) -> bool:
    if window is None:
        return True
    if window.seconds is not None:
        return now - timedelta(seconds=window.seconds) <= moment <= now
    start = datetime.fromisoformat(str(window.start))
    end = datetime.fromisoformat(str(window.end))
    return start <= moment < end


def _test(
    text: str | None, op: str, value: Value | tuple[Value, ...] | None, now: datetime
) -> bool | None:
    if text is None:
        return None
    if op == "contains":
        return str(value) in text
    if op == "starts_with":
        return text.startswith(str(value))
    if op == "in":
        assert isinstance(value, tuple)
        return any(_test(text, "=", v, now) for v in value)
    if isinstance(value, bool):
        return _compare(text.lower(), op, str(value).lower())
    if isinstance(value, float | int):
        number = _number(text)
        return None if number is None else _compare(number, op, float(value))
    if isinstance(value, RelativeTime):
        moment = _timestamp(text)
        return (
            None if moment is None else _compare(moment, op, now - timedelta(seconds=value.seconds))
        )
    return _compare(text, op, value)


def _compare(left: Any, op: str, right: Any) -> bool:
    result = {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]
    return bool(result)


def _as_text(value: Any) -> str | None:
    """What DuckDB's json_extract_string gives for a JSON value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else f"{value:.1f}"
    return orjson.dumps(value).decode()


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None


def _timestamp(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)
