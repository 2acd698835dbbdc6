"""Decoding a collect request body: size limit, gzip, JSON whatever the label says."""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson

from tessera.errors import BodyTooLarge, InvalidGzip, InvalidJson
from tessera.events.nesting import cut_deep_text, fits_64_bits

#: Maps every digit to b"0" and everything else to a space, to find long digit runs at C
#: speed (a regular expression was ten times slower on a 1 MiB batch).
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
#: -2**63 has 19 digits: a shorter run of digits always fits in 64 bits.
_LONG_NUMBER = b"0" * 19


def decode_body(raw: bytes, content_encoding: str | None, max_bytes: int) -> Any:
    """Return the parsed JSON of a request body.

    Clients label bodies application/json, text/plain or even form-urlencoded
    (ARCHITECTURE §4), so the label is ignored and the bytes are parsed as JSON.
    Gzip is detected by header or by its magic bytes, and inflated with a bound so a
    small "zip bomb" cannot grow past `max_bytes`.
    """
    if len(raw) > max_bytes:
        raise BodyTooLarge(
            f"request body is {len(raw)} bytes; the limit is {max_bytes} "
            "(TESSERA_MAX_BODY_BYTES): send smaller batches"
        )
    encoding = (content_encoding or "").strip().lower()
    if encoding == "gzip" or raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, max_bytes)
    elif encoding not in ("", "identity"):
        raise InvalidGzip(
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
            field="Content-Encoding",
            value=encoding,
        )
    if not raw.strip():
        raise InvalidJson("request body is empty; send a JSON object")
    try:
        return parse_json(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidJson(f"request body is not valid JSON: {e}") from None


def parse_json(raw: bytes | str) -> Any:
    """Parse JSON like orjson, but keep integers beyond 64 bits exact, as text.

    orjson turns 123456789012345678901234567890 into a float, and a numeric user id
    rounded through a float can merge two people. Such numbers are rare, so the body is
    parsed by orjson (which also validates it) and, only when it holds a run of 19 or
    more digits, again by the standard library with exact integers; those that do not
    fit in 64 bits are kept as their digits, a string, which every later step can store.

    Values nested past what the parsers read (1,024 levels) are cut out and replaced by
    a note (nesting.cut_deep_text), so one such message does not sink its batch.

    Raises orjson.JSONDecodeError when the text is not JSON.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if "depth" not in str(e):
            raise
        data = cut_deep_text(data)
        document = orjson.loads(data)
    if _LONG_NUMBER not in data.translate(_DIGITS):
        return document
    try:
        return json.loads(data, parse_int=_exact_int)
    except RecursionError:
        # The standard parser recurses; past ~1,000 levels keep orjson's reading, whose
        # too-deep messages are refused one by one anyway.
        return document


def _exact_int(digits: str) -> int | str:
    if len(digits) > 21:  # past 64 bits for sure, and int() refuses 4,300 digits and more
        return digits
    value = int(digits)
    return value if fits_64_bits(value) else digits


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as e:
        raise InvalidGzip(
            f"request body is marked gzip but does not inflate ({e}); "
            "compress the whole body with gzip or drop Content-Encoding",
            field="Content-Encoding",
        ) from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise BodyTooLarge(
            f"request body inflates past the limit of {max_bytes} bytes "
            "(TESSERA_MAX_BODY_BYTES): send smaller batches"
        )
    if not inflater.eof:
        raise InvalidGzip("gzip body is truncated", field="Content-Encoding")
    return data
