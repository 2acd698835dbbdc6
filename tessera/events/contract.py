"""The event contract: Segment's message spec, validated and flattened into a log row.

Pure functions: a parsed message in, an `EventRow` (or an InvalidMessage error) out.
This is the ingest hot path, so it is written with plain dict look-ups rather than a
schema library (ARCHITECTURE §3: pydantic here halves throughput).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from tessera.errors import (
    InvalidMessage,
    InvalidMessageField,
    InvalidTimestamp,
    MessageTooDeep,
    MessageTooLarge,
    MissingField,
    MissingIdentity,
    UnknownType,
)
from tessera.events import nesting
from tessera.events.timestamps import event_time, parse_timestamp, plausible

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
#: The browser library's short paths: /v1/t, /v1/i, ...
SHORT_TYPES = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}

#: Columns of the `events` table after `seq`, in order.
EVENT_COLUMNS = (
    "source_id", "channel", "message_id", "dedupe_key", "type", "event", "name",
    "user_id", "anonymous_id", "previous_id", "group_id", "email", "phone",
    "device_id", "advertising_id", "external_ids", "timestamp", "original_timestamp",
    "sent_at", "received_at", "properties", "traits", "payload",
)  # fmt: skip

_MAX_NAME = 1024


class EventRow(NamedTuple):
    """One accepted message, flattened into the event log's columns (times in µs UTC)."""

    source_id: str
    channel: str
    message_id: str
    dedupe_key: int
    type: str
    event: str | None
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None
    group_id: str | None
    email: str | None
    phone: str | None
    device_id: str | None
    advertising_id: str | None
    external_ids: str | None
    timestamp: int
    original_timestamp: int | None
    sent_at: int | None
    received_at: int
    properties: str | None
    traits: str | None
    payload: str


_new_row = tuple.__new__
_TYPES = frozenset(MESSAGE_TYPES)
_WITH_PROPERTIES = frozenset(("track", "page", "screen"))


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message refused by the contract, kept in the dead-letter table."""

    code: str
    field: str | None
    reason: str
    message_id: str | None
    payload: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a request says about all of its messages."""

    source_id: str
    channel: str
    received_at: int
    sent_at: int | None = None
    #: Segment's HTTP API insists on userId or anonymousId. File imports may identify
    #: a person by e-mail, phone or an external id alone (a CRM row, a till receipt).
    require_segment_ids: bool = True
    #: Why the batch's sentAt was ignored (it could not be read), noted in each message.
    sent_at_problem: str | None = None


def dedupe_key(source_id: str, message_id: str) -> int:
    """A stable 64-bit key for (source, messageId): 8 bytes per event in the index."""
    digest = hashlib.blake2b(f"{source_id}\x00{message_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def check_message(
    message: Any, envelope: Envelope, *, default_type: str | None, max_bytes: int
) -> EventRow:
    """Validate one message and flatten it into an EventRow.

    Args:
        message: the parsed JSON of one message.
        envelope: the source, receive time and batch-level sentAt.
        default_type: the type implied by the endpoint (/v1/track), or None in a batch.
        max_bytes: the largest serialised message accepted.

    Raises:
        InvalidMessage (a subclass naming the rule) when the message breaks the spec.
    """
    # This runs once per event, so the shape every SDK sends (strings where strings are
    # expected, objects where objects are) is tested inline, and only a value off that
    # shape goes to the helper that checks it fully and words the refusal. Calls were
    # half of this function's cost (py-spy, docs/ingest.md "What a message costs").
    # tests/unit/contract_reference.py keeps the straightforward version, and
    # test_contract_reference.py checks that both agree on random messages.
    if not isinstance(message, dict):
        raise InvalidMessageField(
            f"each message must be a JSON object, got {_json_type(message)}",
            field="message",
        )
    payload = _serialise(message)
    if len(payload) > max_bytes:
        raise MessageTooLarge(
            f"message is {len(payload)} bytes; the limit is {max_bytes} "
            "(TESSERA_MAX_MESSAGE_BYTES): trim its properties or traits",
            field="message",
        )
    if default_type is not None:
        kind = default_type  # the endpoint decides, as Segment's /v1/track does
    else:
        raw = message.get("type")
        kind = raw if raw.__class__ is str and raw in _TYPES else _message_type(message, None)
    raw = message.get("messageId")
    if raw.__class__ is str and 0 < len(raw) <= _MAX_NAME and raw.strip():
        message_id = raw
    else:
        message_id = _message_id(message, payload)
    raw = message.get("userId")
    if raw.__class__ is str and len(raw) <= _MAX_NAME:
        user_id = raw.strip() or None
    else:
        user_id = None if raw is None else _identifier(message, "userId")
    raw = message.get("anonymousId")
    if raw.__class__ is str and len(raw) <= _MAX_NAME:
        anonymous_id = raw.strip() or None
    else:
        anonymous_id = None if raw is None else _identifier(message, "anonymousId")
    context = message.get("context")
    if context is not None and context.__class__ is not dict:
        context = _object(message, "context")
    traits = _traits(message, context)
    properties = None
    if kind in _WITH_PROPERTIES:
        properties = message.get("properties")
        if properties is not None and properties.__class__ is not dict:
            properties = _object(message, "properties")
    external_ids = None
    device = None
    if context:
        if context.get("externalIds") is not None:
            external_ids = _external_ids(context)
        if context.get("device") is not None:
            device = _object(context, "device", prefix="context.")
    email = phone = None
    if traits or external_ids:
        email, phone = _contact_points(traits, external_ids)

    if envelope.require_segment_ids and user_id is None and anonymous_id is None:
        raise MissingIdentity(
            "message needs a userId or an anonymousId (both are missing or null); "
            "set anonymousId for visitors who have not signed in",
            field="userId",
        )
    event = name = previous_id = group_id = None
    if kind == "track":
        raw = message.get("event")
        if raw.__class__ is str and len(raw) <= _MAX_NAME:
            event = raw.strip() or None
        if event is None:
            event = _required_text(
                message, "event", "track messages name their event, e.g. 'Order Completed'"
            )
    elif kind in ("page", "screen"):
        name = _optional_text(message, "name")
    elif kind == "alias":
        previous_id = _identifier(message, "previousId")
        if previous_id is None:
            raise MissingField(
                "alias messages need previousId: the id the person had before",
                field="previousId",
            )
        if user_id is None:
            raise MissingField("alias messages need userId: the id to join", field="userId")
    elif kind == "group":
        group_id = _identifier(message, "groupId")
        if group_id is None:
            raise MissingField("group messages need groupId", field="groupId")

    device_id = advertising_id = None
    if device:
        device_id = _optional_text(device, "id", prefix="context.device.")
        advertising_id = _optional_text(device, "advertisingId", prefix="context.device.")
    if not envelope.require_segment_ids and not (
        user_id or anonymous_id or email or phone or device_id or advertising_id or external_ids
    ):
        raise MissingIdentity(
            "row carries no identifier: map at least one column to userId, anonymousId, "
            "email, phone or an external id",
            field="identifiers",
        )

    if message.get("sentAt") is None and envelope.sent_at_problem is None:
        sent_at, notes = envelope.sent_at, None
    else:
        sent_at, notes = _sent_at(message, envelope)
    client_field = None
    raw = message.get("originalTimestamp")
    if raw is not None:
        client_field = "originalTimestamp"
    else:
        raw = message.get("timestamp")
        if raw is not None:
            client_field = "timestamp"
    original = None
    if client_field is not None:
        original = parse_timestamp(raw, client_field)
    timestamp, adjustment = event_time(original, sent_at, envelope.received_at)
    if adjustment is not None:
        notes = {**(notes or {}), "timestampAdjusted": f"{client_field}: {adjustment}"}
    if notes:
        payload = _noted(message, context, notes)

    # Built positionally with tuple.__new__: NamedTuple's keyword constructor was a
    # quarter of the ingest CPU, and its _make a further call per event (py-spy).
    return _new_row(
        EventRow,
        (
            envelope.source_id,
            envelope.channel,
            message_id,
            dedupe_key(envelope.source_id, message_id),
            kind,
            event,
            name,
            user_id,
            anonymous_id,
            previous_id,
            group_id,
            email,
            phone,
            device_id,
            advertising_id,
            orjson.dumps(external_ids).decode() if external_ids else None,
            timestamp,
            plausible(original),
            plausible(sent_at),
            envelope.received_at,
            orjson.dumps(properties).decode() if properties else None,
            orjson.dumps(traits).decode() if traits else None,
            payload,
        ),
    )


def reject(message: Any, error: InvalidMessage) -> Rejection:
    """The dead-letter record for a message that failed `check_message`.

    The payload is kept as sent when it serialises; a message nested too deep (or
    holding what JSON cannot write) is kept clipped at nesting.MAX_DEPTH, so the
    dead letters can always store it.
    """
    message_id = None
    if isinstance(message, dict) and isinstance(message.get("messageId"), str | int):
        message_id = str(message["messageId"])[:_MAX_NAME]
    try:
        payload = orjson.dumps(message).decode()
    except TypeError:  # orjson.JSONEncodeError: too deep, a huge integer, an odd type
        payload = orjson.dumps(nesting.clipped(message), default=repr).decode()
    return Rejection(error.code, error.field, error.message, message_id, payload)


def _serialise(message: dict[str, Any]) -> str:
    """The message as JSON text, refused when it nests past nesting.MAX_DEPTH (checked
    cheaply: only a message with more brackets than that is walked)."""
    try:
        data = orjson.dumps(message)
    except TypeError as e:  # orjson.JSONEncodeError
        if nesting.depth_exceeds(message):
            raise _too_deep() from None
        # A value built in Python (an import row) that JSON cannot hold as it is.
        raise InvalidMessageField(
            f"message holds a value JSON cannot carry ({e}); numbers beyond 64 bits "
            "must be sent as text",
            field="message",
        ) from None
    # nesting.may_exceed, inlined: fewer brackets than the limit cannot nest past it.
    # bytes.count walks byte by byte (as long as orjson takes to write the message) while
    # `in` runs at memchr's speed, and most messages hold no array: count '[' only then.
    openers = data.count(b"{")
    if b"[" in data:
        openers += data.count(b"[")
    if openers > nesting.MAX_DEPTH and nesting.depth_exceeds(message):
        raise _too_deep()
    return data.decode()


def _too_deep() -> MessageTooDeep:
    return MessageTooDeep(
        f"message nests objects or arrays more than {nesting.MAX_DEPTH} levels deep; "
        "flatten its properties or traits",
        field="message",
    )


def _sent_at(
    message: dict[str, Any], envelope: Envelope
) -> tuple[int | None, dict[str, str] | None]:
    """The sentAt that applies to a message (its own, else its batch's), and notes.

    sentAt only serves the clock-skew correction: one that cannot be read is ignored
    (the event keeps the client's time, and a note says why) rather than costing the
    event, or for a batch's sentAt, the whole batch.
    """
    raw = message.get("sentAt")
    if raw is None:
        if envelope.sent_at_problem is None:
            return envelope.sent_at, None
        return envelope.sent_at, {"sentAtIgnored": envelope.sent_at_problem}
    try:
        return parse_timestamp(raw, "sentAt"), None
    except InvalidTimestamp as e:
        return envelope.sent_at, {"sentAtIgnored": f"{e.message}; no clock-skew correction"}


def _noted(message: dict[str, Any], context: dict[str, Any] | None, notes: dict[str, str]) -> str:
    """The payload with notes from Tessera under context.tessera, saying what it changed
    or ignored (the stored columns hold what was used; the payload keeps what was sent)."""
    ours = (context or {}).get("tessera")
    kept = {**(ours if isinstance(ours, dict) else {}), **notes}
    return orjson.dumps({**message, "context": {**(context or {}), "tessera": kept}}).decode()


def _message_type(message: dict[str, Any], default_type: str | None) -> str:
    raw = message.get("type")
    if raw is None:
        if default_type is None:
            raise MissingField(
                f"message has no type; use one of {', '.join(MESSAGE_TYPES)}", field="type"
            )
        return default_type
    if default_type is not None:
        # The endpoint decides, as Segment's /v1/track does for any body it is sent.
        return default_type
    kind = raw.lower() if isinstance(raw, str) else raw
    if kind not in MESSAGE_TYPES:
        raise UnknownType(
            f"unknown message type {raw!r}; use one of {', '.join(MESSAGE_TYPES)}",
            field="type",
            value=raw,
        )
    return str(kind)


def _message_id(message: dict[str, Any], payload: str) -> str:
    raw = message.get("messageId")
    if isinstance(raw, str) and raw.strip():
        if len(raw) > _MAX_NAME:
            raise InvalidMessageField(
                f"messageId is {len(raw)} characters; the limit is {_MAX_NAME}",
                field="messageId",
            )
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, str) and raw:
        raise InvalidMessageField(
            f"messageId is blank ({len(raw)} whitespace character(s)): send a unique id "
            "for each message, or leave messageId out and Tessera derives one from the content",
            field="messageId",
            value=raw,
        )
    if raw not in (None, ""):
        raise InvalidMessageField(
            f"messageId must be a string, got {_json_type(raw)}", field="messageId", value=raw
        )
    # No messageId: derive one from the content, so a retry of the same bytes still
    # deduplicates instead of landing twice.
    return "auto-" + hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def _identifier(message: dict[str, Any], field: str) -> str | None:
    """userId, anonymousId, previousId, groupId: strings or numbers; null means absent."""
    raw = message.get(field)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise InvalidMessageField(
            f"{field} must be a string, got a boolean", field=field, value=raw
        )
    if isinstance(raw, float):
        raw = _float_identifier(raw, field)
    elif isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str):
        raise InvalidMessageField(
            f"{field} must be a string or a number, got {_json_type(raw)}", field=field, value=raw
        )
    raw = raw.strip()
    if not raw:
        return None
    if len(raw) > _MAX_NAME:
        raise InvalidMessageField(
            f"{field} is {len(raw)} characters; the limit is {_MAX_NAME}", field=field
        )
    return raw


def _float_identifier(raw: float, field: str) -> str:
    """A number sent as an identifier. Integers arrive exact (body.parse_json keeps those
    beyond 64 bits as text); a float is kept only when its digits are exact: 1e30 as an id
    would be rounded, and two people could share it."""
    if not raw.is_integer():
        return repr(raw)
    if abs(raw) < 2**53:
        return str(int(raw))
    raise InvalidMessageField(
        f"{field} {raw!r} is a floating-point number too large to be an exact id; "
        "send the id as a string",
        field=field,
        value=raw,
    )


def _json_type(value: object) -> str:
    """What a parsed JSON value was, in the words of JSON rather than Python."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _object(container: dict[str, Any], field: str, *, prefix: str = "") -> dict[str, Any] | None:
    raw = container.get(field)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidMessageField(
            f"{prefix}{field} must be a JSON object, got {_json_type(raw)}",
            field=prefix + field,
        )
    return raw


def _traits(message: dict[str, Any], context: dict[str, Any] | None) -> dict[str, Any] | None:
    """identify traits may sit in `traits` or `context.traits`; `traits` wins."""
    context_traits = _object(context, "traits", prefix="context.") if context else None
    traits = _object(message, "traits")
    if context_traits and traits:
        return {**context_traits, **traits}
    return traits or context_traits


def _external_ids(context: dict[str, Any] | None) -> list[dict[str, str]] | None:
    """context.externalIds: [{"id": ..., "type": ...}, ...] as Segment and RudderStack send."""
    if not context or context.get("externalIds") is None:
        return None
    raw = context["externalIds"]
    if not isinstance(raw, list):
        raise InvalidMessageField("context.externalIds must be a list", field="context.externalIds")
    found = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise InvalidMessageField(
                f"context.externalIds[{position}] needs a string 'type' and an 'id'",
                field=f"context.externalIds[{position}]",
            )
        value = _identifier(item, "id")
        if value is not None:
            found.append({"type": item["type"], "id": value})
    return found or None


def _contact_points(
    traits: dict[str, Any] | None, external_ids: list[dict[str, str]] | None
) -> tuple[str | None, str | None]:
    email = phone = None
    if traits:
        email = _text_or_none(traits.get("email"))
        phone = _text_or_none(traits.get("phone"))
    if external_ids:
        for item in external_ids:
            if email is None and item["type"] == "email":
                email = item["id"]
            elif phone is None and item["type"] == "phone":
                phone = item["id"]
    return email, phone


def _text_or_none(raw: object) -> str | None:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = str(raw)
    if isinstance(raw, str) and raw.strip():
        return raw.strip()[:_MAX_NAME]
    return None


def _required_text(message: dict[str, Any], field: str, hint: str) -> str:
    value = _optional_text(message, field)
    if value is None:
        raise MissingField(f"{field} is missing or empty: {hint}", field=field)
    return value


def _optional_text(container: dict[str, Any], field: str, *, prefix: str = "") -> str | None:
    raw = container.get(field)
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise InvalidMessageField(
            f"{prefix}{field} must be a string, got {_json_type(raw)}",
            field=prefix + field,
            value=raw,
        )
    raw = raw.strip()
    if len(raw) > _MAX_NAME:
        raise InvalidMessageField(
            f"{prefix}{field} is {len(raw)} characters; the limit is {_MAX_NAME}",
            field=prefix + field,
        )
    return raw or None
