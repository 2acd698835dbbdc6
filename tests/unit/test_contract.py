"""The event contract: each rule of the Segment spec, pure."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tessera.errors import InvalidMessage
from tessera.events.body import parse_json
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


def nested(levels: int) -> Any:
    """A value of `levels` objects one inside the other."""
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize("levels", [64, 254, 300, 1000])
def test_message_nested_past_the_limit_is_refused_as_too_deep(levels: int) -> None:
    # The message is one level more than its properties. 254 used to raise orjson's
    # TypeError (a 503 for the whole batch); 64 breaks no serialiser yet, but leaves too
    # little room for the answers that wrap a stored value.
    error = refused({"type": "track", "event": "e", "userId": "u", "properties": nested(levels)})
    assert error.code == "message_too_deep" and error.field == "message"
    assert "64 levels" in error.message


def test_message_at_the_depth_limit_is_accepted() -> None:
    row = check({"type": "track", "event": "e", "userId": "u", "properties": nested(63)})
    assert row.properties is not None


def test_brackets_in_strings_do_not_count_as_nesting() -> None:
    row = check({"type": "track", "event": "e", "userId": "u", "properties": {"a": "[{" * 100}})
    assert orjson.loads(row.properties or "{}") == {"a": "[{" * 100}


@pytest.mark.parametrize("levels", [300, 1000])
def test_too_deep_rejection_keeps_a_clipped_payload(levels: int) -> None:
    message: dict[str, Any] = {"type": "track", "userId": "u", "messageId": "m1"}
    message["properties"] = nested(levels)
    letter = reject(message, refused(message))
    kept = orjson.loads(letter.payload)
    assert kept["userId"] == "u" and letter.message_id == "m1"
    assert "nested deeper than 64 levels" in letter.payload


def test_blank_message_id_says_it_is_blank() -> None:
    error = refused({"type": "identify", "userId": "u", "messageId": "  "})
    assert error.field == "messageId"
    assert "blank" in error.message and "got str" not in error.message


def test_message_id_of_the_wrong_type_names_the_json_type() -> None:
    error = refused({"type": "identify", "userId": "u", "messageId": ["a"]})
    assert "got an array" in error.message


def test_huge_numeric_user_id_keeps_every_digit() -> None:
    message = parse_json(
        b'{"type":"identify","userId":123456789012345678901234567890,'
        b'"anonymousId":-98765432109876543210,"messageId":18446744073709551616}'
    )
    row = check(message)
    assert row.user_id == "123456789012345678901234567890"
    assert row.anonymous_id == "-98765432109876543210"
    assert row.message_id == "18446744073709551616"


def test_huge_number_in_properties_is_kept_as_its_digits() -> None:
    message = parse_json(b'{"type":"track","event":"e","userId":"u","properties":{"n":1e3,'
                         b'"big":123456789012345678901234567890}}')  # fmt: skip
    row = check(message)
    big = "123456789012345678901234567890"
    assert orjson.loads(row.properties or "{}") == {"n": 1000.0, "big": big}


def test_float_user_id_too_large_to_be_exact_is_refused() -> None:
    error = refused({"type": "identify", "userId": 1e30})
    assert error.field == "userId" and "as a string" in error.message
    assert check({"type": "identify", "userId": 42.0}).user_id == "42"


def test_python_integer_beyond_64_bits_is_a_clear_refusal() -> None:
    # Import rows are built in Python, where such an integer can appear.
    error = refused({"type": "identify", "userId": "u", "traits": {"n": 10**30}})
    assert error.field == "message" and "64 bits" in error.message


def adjustment(row: Any) -> str:
    note: str = orjson.loads(row.payload)["context"]["tessera"]["timestampAdjusted"]
    return note


def test_skew_correction_cannot_move_an_event_past_the_day_after_receipt() -> None:
    # Was stored as 2156-11-29: the profile's last_seen then sat out of its lifetime's reach.
    row = check(
        {
            "type": "track",
            "event": "e",
            "userId": "u",
            "timestamp": "2099-12-31T00:00:00Z",
            "sentAt": "1970-01-01T00:00:01Z",
        }
    )
    assert row.timestamp == RECEIVED
    assert "2099-12-31T00:00:00Z" in adjustment(row) and "receive time" in adjustment(row)
    assert micros_to_datetime(row.original_timestamp or 0).year == 2099


def test_skew_correction_cannot_move_an_event_before_1970() -> None:
    row = check(
        {
            "type": "track",
            "event": "e",
            "userId": "u",
            "context": {"ip": "1.2.3.4"},
            "timestamp": "1970-01-01T00:00:01Z",
            "sentAt": "2099-12-31T00:00:00Z",
        }
    )
    assert row.timestamp == RECEIVED
    assert "before 1970" in adjustment(row)
    assert orjson.loads(row.payload)["context"]["ip"] == "1.2.3.4"


@pytest.mark.parametrize("sent", ["2099-06-01T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_far_timestamps_without_skew_are_stored_at_receipt(sent: str) -> None:
    row = check({"type": "track", "event": "e", "userId": "u", "timestamp": sent})
    assert row.timestamp == RECEIVED and sent in adjustment(row)


def test_a_device_clock_reset_to_1970_is_still_corrected() -> None:
    row = check(
        {
            "type": "track",
            "event": "e",
            "userId": "u",
            "timestamp": "1970-01-01T00:10:00Z",
            "sentAt": "1970-01-01T00:10:05Z",
        }
    )
    assert micros_to_datetime(row.timestamp).isoformat() == "2024-05-01T12:00:05"
    assert "tessera" not in orjson.loads(row.payload).get("context", {})


def test_a_timestamp_a_few_hours_ahead_is_kept() -> None:
    # A local time sent as UTC: wrong, but it may be the only time there is.
    row = check({"type": "track", "event": "e", "userId": "u", "timestamp": "2024-05-01T22:00:00Z"})
    assert micros_to_datetime(row.timestamp).isoformat() == "2024-05-01T22:00:00"


def test_unreadable_sent_at_is_ignored_and_noted() -> None:
    row = check({"type": "track", "event": "e", "userId": "u", "sentAt": 5,
                 "timestamp": "2024-05-01T11:00:00Z"})  # fmt: skip
    assert micros_to_datetime(row.timestamp).isoformat() == "2024-05-01T11:00:00"
    note = orjson.loads(row.payload)["context"]["tessera"]["sentAtIgnored"]
    assert "sentAt must be an ISO-8601 string" in note
