"""check_message's fast paths against the straightforward contract (contract_reference.py):
on random messages, the same row or the same refusal (class, code, field and words)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.errors import InvalidMessage
from tessera.events.contract import MESSAGE_TYPES, Envelope, EventRow, check_message
from tessera.events.timestamps import parse_timestamp
from tests.unit.contract_reference import check_message_plainly

RECEIVED = parse_timestamp("2024-05-01T12:00:10Z", "t")

# Values a field may hold: what SDKs send, and what breaks each rule (blank, too long,
# the wrong JSON type, numbers as ids, booleans, floats too large to be exact).
spaces = st.sampled_from(["", " ", "\t", "\n "])
texts = st.one_of(
    st.sampled_from(["u1", "", "   ", "Order Completed", "x" * 1024, "é" * 3]),
    st.sampled_from(["x" * 1025, " " + "x" * 1024, "x" * 1024 + " "]),
    st.builds("{}{}{}".format, spaces, st.sampled_from(["u1", "Order Completed"]), spaces),
    st.text(max_size=6),
)
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0.5, 1.0, 2.0**53, 1e30, -3.0, 7]),
)
odd = st.one_of(st.none(), st.booleans(), st.just([]), st.just({}), st.just(["a"]))
field_values = st.one_of(texts, texts, numbers, odd)
times = st.one_of(
    st.sampled_from(
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.123456+02:00",
            " 2024-05-01T11:00:00Z ",
            "2024-05-01T12:00:00",
            "1970-01-01T00:00:01Z",
            "2099-12-31T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-12:00",
            "yesterday",
            "",
        ]
    ),
    numbers,
    odd,
)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


objects = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["email", "phone", "plan", "id", "advertisingId"]),
        field_values,
        max_size=3,
    ),
    st.sampled_from([{}, {"deep": nested(62)}, {"deep": nested(63)}, {"deep": nested(70)}]),
    field_values,
)
external_ids = st.one_of(
    st.none(),
    field_values,
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["email", "phone", "crm"]), "id": field_values}
            ),
            field_values,
        ),
        max_size=3,
    ),
)
contexts = st.one_of(
    field_values,
    st.fixed_dictionaries(
        {},
        optional={
            "traits": objects,
            "externalIds": external_ids,
            "device": objects,
            "tessera": objects,
            "library": st.just({"name": "analytics-python", "version": "2.3.0"}),
        },
    ),
)
field_strategies = {
    "type": st.one_of(st.sampled_from([*MESSAGE_TYPES, "TRACK", "Identify", "nope"]), odd),
    "messageId": field_values,
    "userId": field_values,
    "anonymousId": field_values,
    "previousId": field_values,
    "groupId": field_values,
    "event": field_values,
    "name": field_values,
    "properties": objects,
    "traits": objects,
    "context": contexts,
    "timestamp": times,
    "originalTimestamp": times,
    "sentAt": times,
}
sound = st.fixed_dictionaries(
    {
        "type": st.sampled_from(MESSAGE_TYPES),
        "messageId": st.sampled_from(["m1", "00000000-0000-0007-0000-000000000000"]),
        "userId": st.sampled_from(["u1", "user-7"]),
        "anonymousId": st.sampled_from(["a1", "00000000-0000-0000-0000-000000000007"]),
        "previousId": st.just("p1"),
        "groupId": st.just("g1"),
        "event": st.sampled_from(["Product Viewed", "Order Completed"]),
        "name": st.just("Home"),
        "properties": st.just({"price": 19.99, "currency": "EUR"}),
        "traits": st.just({"email": "a@example.com", "plan": "pro"}),
        "context": st.sampled_from(
            [
                {"library": {"name": "analytics-python", "version": "2.3.0"}},
                {"device": {"id": "d1", "advertisingId": " ad1 "}, "traits": {"phone": 33}},
                {"externalIds": [{"type": "email", "id": "b@example.com"}], "traits": {}},
                {"tessera": {"mine": 1}, "device": {}},
            ]
        ),
        "timestamp": st.just("2024-05-01T12:00:00.067288+00:00"),
    }
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A message as an SDK sends it, then a few of its fields dropped or changed."""
    message = dict(draw(sound))
    for key in draw(st.sets(st.sampled_from(sorted(message)), max_size=4)):
        del message[key]
    for key in draw(st.sets(st.sampled_from(sorted(field_strategies)), max_size=3)):
        message[key] = draw(field_strategies[key])
    return message


envelopes = st.builds(
    Envelope,
    source_id=st.just("src_1"),
    channel=st.just("web"),
    received_at=st.just(RECEIVED),
    sent_at=st.one_of(st.none(), st.just(RECEIVED - 3_600_000_000)),
    require_segment_ids=st.sampled_from([True, True, False]),
    sent_at_problem=st.one_of(st.none(), st.just("the batch's sentAt 'x' is not ISO-8601")),
)


def outcome(check: Any, message: Any, envelope: Envelope, **options: Any) -> EventRow | tuple:
    try:
        return check(message, envelope, **options)  # type: ignore[no-any-return]
    except InvalidMessage as e:
        return (type(e).__name__, e.code, e.field, e.message)


@settings(max_examples=1500)
@given(
    message=st.one_of(messages(), messages(), field_values),
    envelope=envelopes,
    default_type=st.one_of(st.none(), st.none(), st.none(), st.sampled_from(MESSAGE_TYPES)),
    max_bytes=st.sampled_from([32_768, 32_768, 32_768, 300]),
)
def test_fast_contract_agrees_with_the_straightforward_one(
    message: Any, envelope: Envelope, default_type: str | None, max_bytes: int
) -> None:
    options = {"default_type": default_type, "max_bytes": max_bytes}
    assert outcome(check_message, message, envelope, **options) == outcome(
        check_message_plainly, message, envelope, **options
    )


def test_the_comparison_sees_a_difference_in_rows() -> None:
    """The property above can fail: the two rows of different messages differ."""
    envelope = Envelope("src_1", "web", RECEIVED)
    options: dict[str, Any] = {"default_type": None, "max_bytes": 32_768}
    first = {"type": "track", "event": "A", "userId": "u1", "messageId": "m1"}
    second = {**first, "userId": " u2"}
    assert outcome(check_message, first, envelope, **options) != outcome(
        check_message_plainly, second, envelope, **options
    )
