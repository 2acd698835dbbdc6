"""Decoding a collect request body: size limit, gzip, JSON whatever the label says."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from tessera.errors import BodyTooLarge, InvalidGzip, InvalidJson


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
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidJson(f"request body is not valid JSON: {e}") from None


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
