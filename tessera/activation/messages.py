"""What a destination receives, as Segment-spec messages: pure functions over values.

Events come from the log (`EventRow`): the message as it was sent, with the `messageId`,
`type` and `timestamp` Tessera used, without Tessera's own notes (`context.tessera`) or a
write key. A destination's filters (sources, event names, types, a JMESPath condition)
choose among them and its mapping (rename, drop, hash, set) reshapes them.

Audience changes become two messages each (`audience_messages`): a track `Audience
Entered` / `Audience Exited` and an identify carrying the audience as a boolean trait,
with the identifiers the destination asked for. Their messageIds are derived from the
destination, the segment, the person and the time of the change, so a change sent again
(after a crash, a retry, a replay) keeps its id and receivers can deduplicate.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import jmespath
import jmespath.parser
import orjson

from tessera.activation.options import DestinationOptions, MappingStep, compile_condition

Message = dict[str, Any]


class EventRow(NamedTuple):
    """One event of the log as a destination reads it, with its person's consent (a
    NamedTuple: a worker builds thousands a second, and a frozen dataclass costs 10x)."""

    seq: int
    source_id: str
    message_id: str
    type: str
    event: str | None
    timestamp: datetime
    payload: str
    consent: Mapping[str, Any]


@dataclass(frozen=True)
class AudienceChange:
    """A person entering or leaving a segment, as a destination is told about it."""

    segment_id: str
    segment: str
    profile_id: str
    entered: bool
    at: datetime
    identifiers: Mapping[str, Sequence[str]]
    consent: Mapping[str, Any] = field(default_factory=dict)


class Selector:
    """A destination's filters, compiled once: `selects(row)` says whether it wants an event."""

    def __init__(self, options: DestinationOptions, source_ids: Sequence[str]) -> None:
        self.wants_events = options.events
        self.source_ids = frozenset(source_ids)
        self.names = frozenset(options.event_names)
        self.types = frozenset(options.types)
        self.condition: jmespath.parser.ParsedResult | None = (
            compile_condition(options.condition) if options.condition else None
        )
        self.mapping = options.mapping

    def selects(self, row: EventRow) -> bool:
        """The filters that need no parsing first, then the condition on the message."""
        if not self.wants_events:
            return False
        if self.source_ids and row.source_id not in self.source_ids:
            return False
        if self.types and row.type not in self.types:
            return False
        return not self.names or (row.type == "track" and row.event in self.names)

    def message(self, row: EventRow) -> Message | None:
        """The message to send for `row`, or None when the condition refuses it."""
        message = event_message(row)
        if self.condition is not None and not self.condition.search(message):
            return None
        return apply_mapping(message, self.mapping) if self.mapping else message


def event_message(row: EventRow) -> Message:
    """The Segment-spec message for one event of the log."""
    try:
        parsed = orjson.loads(row.payload)
    except orjson.JSONDecodeError:
        parsed = {}
    message: Message = parsed if isinstance(parsed, dict) else {}
    message.pop("writeKey", None)
    context = message.get("context")
    if isinstance(context, dict):
        context.pop("tessera", None)
    message["messageId"] = row.message_id
    message["type"] = row.type
    message["timestamp"] = row.timestamp.isoformat() + "Z"
    return message


def apply_mapping(message: Message, steps: Sequence[MappingStep]) -> Message:
    """`message` reshaped by each step in turn (a copy; the input is left alone)."""
    result = copy.deepcopy(message)
    for step in steps:
        if step.rename is not None and step.to is not None:
            found, value = _pop(result, step.rename)
            if found:
                _put(result, step.to, value)
        elif step.drop is not None:
            _pop(result, step.drop)
        elif step.hash is not None:
            found, value = _pop(result, step.hash)
            if found and value is not None:
                _put(result, step.hash, sha256_text(str(value)))
        elif step.set is not None:
            _put(result, step.set, step.value)
    return result


def sha256_text(value: str) -> str:
    """SHA-256 of the trimmed, lower-cased text: how Google and Meta match e-mails."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()


def audience_messages(
    change: AudienceChange, destination_id: str, wanted: Sequence[str]
) -> list[Message]:
    """The track and the identify that tell a destination about one membership change."""
    stamp = change.at.isoformat() + "Z"
    ids = wanted_identifiers(change.identifiers, wanted)
    user_id = ids.get("user_id")
    who: Message = {"userId": user_id} if user_id else {"anonymousId": change.profile_id}
    external = [{"type": kind, "id": value, "collection": "users", "encoding": "none"}
                for kind, value in ids.items()]  # fmt: skip
    context: Message = {"externalIds": external, "personas": {"profile_id": change.profile_id}}
    key = f"{destination_id}:{change.segment_id}:{change.profile_id}:{change.entered}:{stamp}"
    event = "Audience Entered" if change.entered else "Audience Exited"
    traits: Message = {change.segment: change.entered}
    traits.update({k: v for k, v in ids.items() if k in ("email", "phone")})
    return [
        {**who, "type": "track", "event": event, "messageId": "aud-" + _digest(key + ":t"),
         "timestamp": stamp, "context": context,
         "properties": {"audience_key": change.segment, "audience_id": change.segment_id,
                        change.segment: change.entered}},
        {**who, "type": "identify", "messageId": "aud-" + _digest(key + ":i"),
         "timestamp": stamp, "context": context, "traits": traits},
    ]  # fmt: skip


def wanted_identifiers(found: Mapping[str, Sequence[str]], wanted: Sequence[str]) -> dict[str, str]:
    """The first value of each identifier type asked for; hashed types from their plain one."""
    chosen: dict[str, str] = {}
    for kind in wanted:
        plain = kind.removesuffix("_sha256")
        values = found.get(plain) or []
        if values:
            chosen[kind] = sha256_text(values[0]) if kind.endswith("_sha256") else values[0]
    return chosen


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _pop(message: Message, path: str) -> tuple[bool, Any]:
    *parents, last = path.split(".")
    node: Any = message
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and last in node:
        return True, node.pop(last)
    return False, None


def _put(message: Message, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = message
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value
