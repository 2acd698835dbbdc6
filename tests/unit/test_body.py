"""Request bodies: gzip, size limits, JSON whatever the content type."""

from __future__ import annotations

import gzip

import pytest

from tessera.errors import BodyTooLarge, InvalidGzip, InvalidJson
from tessera.events.body import decode_body
from tessera.events.nesting import cut_deep_text


def test_plain_json() -> None:
    assert decode_body(b'{"a": 1}', None, 100) == {"a": 1}


def test_gzip_by_header_and_by_magic_bytes() -> None:
    packed = gzip.compress(b'{"a": 2}')
    assert decode_body(packed, "gzip", 100) == {"a": 2}
    assert decode_body(packed, None, 100) == {"a": 2}


def test_bad_gzip_is_a_clear_error() -> None:
    with pytest.raises(InvalidGzip, match="does not inflate"):
        decode_body(b"\x1f\x8bnot really gzip", "gzip", 100)


def test_truncated_gzip() -> None:
    with pytest.raises(InvalidGzip, match="truncated"):
        decode_body(gzip.compress(b'{"a": 1}' * 50)[:-12], "gzip", 10_000)


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b" " * 10_000_000)
    with pytest.raises(BodyTooLarge, match="inflates past"):
        decode_body(bomb, "gzip", 1_000_000)


def test_body_over_limit() -> None:
    with pytest.raises(BodyTooLarge, match="limit is 10"):
        decode_body(b"x" * 11, None, 10)


def test_not_json_and_empty() -> None:
    with pytest.raises(InvalidJson, match="not valid JSON"):
        decode_body(b"hello", None, 100)
    with pytest.raises(InvalidJson, match="empty"):
        decode_body(b"  ", None, 100)


def test_unknown_encoding() -> None:
    with pytest.raises(InvalidGzip, match="'br'"):
        decode_body(b"{}", "br", 100)


def test_integers_beyond_64_bits_keep_every_digit_as_text() -> None:
    # orjson alone gives 1.2345678901234568e+29: two user ids could round to one.
    body = b'{"userId": 123456789012345678901234567890, "n": -9223372036854775809}'
    assert decode_body(body, None, 1000) == {
        "userId": "123456789012345678901234567890",
        "n": "-9223372036854775809",
    }


def test_64_bit_integers_and_long_digit_strings_are_left_as_they_are() -> None:
    body = b'{"a": 18446744073709551615, "b": -9223372036854775808, "c": "12345678901234567890"}'
    assert decode_body(body, None, 1000) == {
        "a": 18446744073709551615,
        "b": -9223372036854775808,
        "c": "12345678901234567890",
    }


def test_a_message_nested_past_what_parsers_read_does_not_sink_its_batch() -> None:
    # Past 1,024 levels no parser reads the body: the whole batch was refused.
    deep = b"[" * 2000 + b'"]\\"["' + b"]" * 2000
    body = b'{"batch": [{"a": 1}, {"deep": ' + deep + b'}, {"s": "[[{"}]}'
    batch = decode_body(body, None, 100_000)["batch"]
    assert batch[0] == {"a": 1} and batch[2] == {"s": "[[{"}
    value = batch[1]["deep"]
    for _ in range(509):  # the body, the batch and the message are the first 3 levels
        (value,) = value
    assert value == "…(nested deeper than 512 levels)"


@pytest.mark.parametrize(
    ("limit", "cut"),
    [
        (2, b'[["..2","..2"]]'),
        (3, b'[[["..3","..3"],["..3"]]]'),
        (9, b"[[[[1],[2]],[[3]]]]"),
    ],
)
def test_cut_deep_text_replaces_each_value_past_the_limit(limit: int, cut: bytes) -> None:
    mark = "…(nested deeper than {} levels)".encode()
    expected = cut.replace(b"..2", mark.replace(b"{}", b"2")).replace(
        b"..3", mark.replace(b"{}", b"3")
    )
    assert cut_deep_text(b"[[[[1],[2]],[[3]]]]", limit) == expected
