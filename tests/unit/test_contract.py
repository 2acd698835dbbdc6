"""The event contract: each rule of the Segment spec, pure."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tessera.errors import InvalidMessage
from tessera.events.contract import Envelope, check_message, dedupe_key, reject
from tessera.events.timestamps import micros_to_datetime, parse_timestamp

RECEIVED = parse_timestamp("2024-05-01T12:00:10Z", "t")
ENVELOPE = Envelope("src_1", "web", RECEIVED)


def check(
    message: dict[str, Any],
    *,
    default_type: str | None = None,
    envelope: Envelope = ENVELOPE,
    max_bytes: int = 32768,
):  # type: ignore[no-untyped-def]
    return check_message(message, envelope, default_type=default_type, max_bytes=max_bytes)


def refused(message: Any, **kwargs: Any) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        check(message, **kwargs)
    return caught.value


def test_track_is_flattened_into_log_columns() -> None:
    row = check(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "messageId": "m1",
            "properties": {"revenue": 10},
        }
    )
    assert (row.type, row.event, row.user_id, row.message_id) == (
        "track",
        "Order Completed",
        "u1",
        "m1",
    )
    assert orjson.loads(row.properties or "{}") == {"revenue": 10}
    assert row.dedupe_key == dedupe_key("src_1", "m1")
    assert row.channel == "web"


def test_refuses_message_without_user_or_anonymous_id() -> None:
    error = refused({"type": "track", "event": "x", "userId": None, "anonymousId": None})
    assert error.code == "missing_identity"
    assert "userId or an anonymousId" in error.message


def test_empty_string_ids_count_as_missing() -> None:
    assert refused({"type": "track", "event": "x", "userId": "  "}).code == "missing_identity"


def test_null_user_id_with_anonymous_id_is_fine() -> None:
    row = check({"type": "page", "userId": None, "anonymousId": "a1"})
    assert row.user_id is None and row.anonymous_id == "a1"


def test_numeric_user_id_becomes_text() -> None:
    assert check({"type": "identify", "userId": 42}).user_id == "42"


def test_track_needs_event_name() -> None:
    error = refused({"type": "track", "userId": "u"})
    assert (error.code, error.field) == ("missing_field", "event")


def test_unknown_type_names_the_value_and_the_choices() -> None:
    error = refused({"type": "purchase", "userId": "u"})
    assert error.code == "unknown_type"
    assert "'purchase'" in error.message and "track" in error.message


def test_endpoint_type_wins_over_body_type() -> None:
    assert (
        check({"type": "bogus", "userId": "u", "event": "e"}, default_type="track").type == "track"
    )


def test_batch_message_needs_a_type() -> None:
    assert refused({"userId": "u"}).field == "type"


def test_unparseable_timestamp_names_field_and_value() -> None:
    error = refused({"type": "identify", "userId": "u", "timestamp": "yesterday"})
    assert error.code == "invalid_timestamp"
    assert "timestamp" in error.message and "'yesterday'" in error.message


def test_oversized_message_is_refused() -> None:
    error = refused({"type": "identify", "userId": "u", "traits": {"bio": "x" * 100}}, max_bytes=64)
    assert error.code == "message_too_large"


def test_alias_needs_previous_id_and_user_id() -> None:
    assert refused({"type": "alias", "userId": "u"}).field == "previousId"
    assert refused({"type": "alias", "anonymousId": "a", "previousId": "p"}).field == "userId"
    row = check({"type": "alias", "userId": "u", "previousId": "a"})
    assert row.previous_id == "a"


def test_group_needs_group_id() -> None:
    assert refused({"type": "group", "userId": "u"}).field == "groupId"


def test_properties_must_be_an_object() -> None:
    error = refused({"type": "track", "userId": "u", "event": "e", "properties": [1]})
    assert error.field == "properties"


def test_traits_may_sit_in_context_traits() -> None:
    row = check(
        {
            "type": "identify",
            "userId": "u",
            "context": {"traits": {"email": "a@b.co", "plan": "free"}},
            "traits": {"plan": "pro"},
        }
    )
    assert orjson.loads(row.traits or "{}") == {"email": "a@b.co", "plan": "pro"}
    assert row.email == "a@b.co"


def test_identifiers_are_extracted_from_context() -> None:
    row = check(
        {
            "type": "track",
            "event": "e",
            "anonymousId": "a",
            "context": {
                "device": {"id": "dev-1", "advertisingId": "AD-1"},
                "traits": {"phone": "+33 6 12 34 56 78"},
                "externalIds": [
                    {"id": "L123", "type": "loyalty_id", "collection": "users", "encoding": "none"}
                ],
            },
        }
    )
    assert (row.device_id, row.advertising_id, row.phone) == ("dev-1", "AD-1", "+33 6 12 34 56 78")
    assert orjson.loads(row.external_ids or "[]") == [{"type": "loyalty_id", "id": "L123"}]


def test_clock_skew_is_corrected_like_segment() -> None:
    # The device clock is 1 hour fast: sentAt and originalTimestamp both carry the error.
    row = check(
        {
            "type": "track",
            "event": "e",
            "userId": "u",
            "originalTimestamp": "2024-05-01T13:00:00Z",
            "sentAt": "2024-05-01T13:00:05Z",
        }
    )
    assert micros_to_datetime(row.timestamp).isoformat() == "2024-05-01T12:00:05"
    assert micros_to_datetime(row.original_timestamp or 0).isoformat() == "2024-05-01T13:00:00"


def test_batch_sent_at_applies_to_its_messages() -> None:
    envelope = Envelope(
        "src_1", "web", RECEIVED, sent_at=parse_timestamp("2024-05-01T12:00:20Z", "s")
    )
    row = check(
        {"type": "track", "event": "e", "userId": "u", "timestamp": "2024-05-01T12:00:00Z"},
        envelope=envelope,
    )
    assert micros_to_datetime(row.timestamp).isoformat() == "2024-05-01T11:59:50"


def test_without_client_time_the_receive_time_is_used() -> None:
    row = check({"type": "identify", "userId": "u"})
    assert row.timestamp == RECEIVED and row.original_timestamp is None


def test_missing_message_id_is_derived_from_content() -> None:
    message = {"type": "identify", "userId": "u", "traits": {"a": 1}}
    first, second = check(message), check(dict(message))
    assert first.message_id.startswith("auto-")
    assert first.message_id == second.message_id


def test_imports_may_identify_by_email_alone() -> None:
    envelope = Envelope("src_1", "crm", RECEIVED, require_segment_ids=False)
    row = check({"type": "identify", "traits": {"email": "x@y.fr"}}, envelope=envelope)
    assert row.email == "x@y.fr"
    with pytest.raises(InvalidMessage, match="no identifier"):
        check({"type": "identify", "traits": {"name": "x"}}, envelope=envelope)


def test_rejection_keeps_payload_and_reason() -> None:
    message = {"type": "track", "userId": "u", "messageId": "m9"}
    with pytest.raises(InvalidMessage) as caught:
        check(message)
    letter = reject(message, caught.value)
    assert letter.message_id == "m9" and letter.code == "missing_field"
    assert orjson.loads(letter.payload) == message


def test_non_object_message_is_refused() -> None:
    assert refused("hello").field == "message"
