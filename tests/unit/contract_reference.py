"""The straightforward event contract, kept as the reference for check_message's fast paths.

`tessera.events.contract.check_message` tests the shape every SDK sends inline and calls
a helper only for a value off that shape. This is the same contract written one helper
call per rule (the code as it stood before the fast paths), which
test_contract_reference.py sets beside it on random messages: the rows must be equal and
the refusals the same. The helpers themselves are shared: they are the full checks.
"""

from __future__ import annotations

from typing import Any

import orjson

from tessera.events import contract, nesting
from tessera.events.contract import (
    Envelope,
    EventRow,
    InvalidMessageField,
    MessageTooLarge,
    MissingField,
    MissingIdentity,
    _contact_points,
    _external_ids,
    _identifier,
    _json_type,
    _message_id,
    _message_type,
    _noted,
    _object,
    _optional_text,
    _required_text,
    _sent_at,
    _traits,
    dedupe_key,
)
from tessera.events.timestamps import event_time, parse_timestamp, plausible


def check_message_plainly(
    message: Any, envelope: Envelope, *, default_type: str | None, max_bytes: int
) -> EventRow:
    """contract.check_message as it was written before its fast paths: one helper call per
    rule, in the order the rules are checked.

    Args:
        message: the parsed JSON of one message.
        envelope: the source, receive time and batch-level sentAt.
        default_type: the type implied by the endpoint (/v1/track), or None in a batch.
        max_bytes: the largest serialised message accepted.

    Raises:
        InvalidMessage (a subclass naming the rule) when the message breaks the spec.
    """
    if not isinstance(message, dict):
        raise InvalidMessageField(
            f"each message must be a JSON object, got {_json_type(message)}",
            field="message",
        )
    payload = _serialise_plainly(message)
    if len(payload) > max_bytes:
        raise MessageTooLarge(
            f"message is {len(payload)} bytes; the limit is {max_bytes} "
            "(TESSERA_MAX_MESSAGE_BYTES): trim its properties or traits",
            field="message",
        )
    kind = _message_type(message, default_type)
    message_id = _message_id(message, payload)
    user_id = _identifier(message, "userId")
    anonymous_id = _identifier(message, "anonymousId")
    context = _object(message, "context")
    traits = _traits(message, context)
    properties = _object(message, "properties") if kind in ("track", "page", "screen") else None
    external_ids = _external_ids(context)
    email, phone = _contact_points(traits, external_ids)
    device = _object(context, "device", prefix="context.") if context else None

    if envelope.require_segment_ids and user_id is None and anonymous_id is None:
        raise MissingIdentity(
            "message needs a userId or an anonymousId (both are missing or null); "
            "set anonymousId for visitors who have not signed in",
            field="userId",
        )
    event = name = previous_id = group_id = None
    if kind == "track":
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

    device_id = _optional_text(device, "id", prefix="context.device.") if device else None
    advertising_id = (
        _optional_text(device, "advertisingId", prefix="context.device.") if device else None
    )
    if not envelope.require_segment_ids and not (
        user_id or anonymous_id or email or phone or device_id or advertising_id or external_ids
    ):
        raise MissingIdentity(
            "row carries no identifier: map at least one column to userId, anonymousId, "
            "email, phone or an external id",
            field="identifiers",
        )

    sent_at, notes = _sent_at(message, envelope)
    client_field = (
        "originalTimestamp"
        if message.get("originalTimestamp") is not None
        else ("timestamp" if message.get("timestamp") is not None else None)
    )
    original = None
    if client_field is not None:
        original = parse_timestamp(message[client_field], client_field)
    timestamp, adjustment = event_time(original, sent_at, envelope.received_at)
    if adjustment is not None:
        notes = {**(notes or {}), "timestampAdjusted": f"{client_field}: {adjustment}"}
    if notes:
        payload = _noted(message, context, notes)

    # Built positionally through tuple.__new__: NamedTuple's keyword constructor was a
    # quarter of the ingest CPU (measured with py-spy).
    return EventRow._make(
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
        )
    )


def _serialise_plainly(message: dict[str, Any]) -> str:
    """The message as JSON text, refused when it nests past nesting.MAX_DEPTH (checked
    cheaply: only a message with many brackets is walked)."""
    try:
        payload = orjson.dumps(message).decode()
    except TypeError as e:  # orjson.JSONEncodeError
        if nesting.depth_exceeds(message):
            raise contract._too_deep() from None
        # A value built in Python (an import row) that JSON cannot hold as it is.
        raise InvalidMessageField(
            f"message holds a value JSON cannot carry ({e}); numbers beyond 64 bits "
            "must be sent as text",
            field="message",
        ) from None
    if nesting.may_exceed(payload) and nesting.depth_exceeds(message):
        raise contract._too_deep()
    return payload
