"""ISO-8601 timestamps as sent by Segment clients, and Segment's clock-skew correction.

Times are kept as integer microseconds since the Unix epoch (UTC) on the hot path:
they go straight into Arrow `timestamp[us]` columns without building datetimes twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tessera.errors import InvalidTimestamp

_MIN_MICROS = 0  # 1970-01-01
_MAX_MICROS = 4_102_444_800_000_000  # 2100-01-01: later is a client bug, not an event


def parse_timestamp(value: object, field: str) -> int:
    """Parse an ISO-8601 string into UTC microseconds; naive times are taken as UTC.

    Raises InvalidTimestamp naming the field and the value.
    """
    if not isinstance(value, str):
        raise InvalidTimestamp(
            f"{field} must be an ISO-8601 string such as '2024-05-01T12:00:00Z', "
            f"got {type(value).__name__} {_show(value)}",
            field=field,
            value=value,
        )
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidTimestamp(
            f"{field} {_show(value)} is not an ISO-8601 timestamp; "
            "send e.g. '2024-05-01T12:00:00.000Z'",
            field=field,
            value=value,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    micros = round(parsed.timestamp() * 1_000_000)
    if not _MIN_MICROS <= micros < _MAX_MICROS:
        raise InvalidTimestamp(
            f"{field} {_show(value)} is outside 1970-2099", field=field, value=value
        )
    return micros


def corrected_timestamp(client_time: int, sent_at: int | None, received_at: int) -> int:
    """Segment's skew correction: shift the client's time by (receivedAt - sentAt).

    A device whose clock is an hour fast sends sentAt an hour ahead; the same error
    is in its event times, so subtracting it recovers the true time.
    """
    if sent_at is None:
        return client_time
    return client_time + (received_at - sent_at)


def micros_to_datetime(micros: int) -> datetime:
    """For display and tests: naive UTC datetime, as DuckDB TIMESTAMP returns them."""
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).replace(tzinfo=None)


def utc_now() -> datetime:
    """The time now in UTC, naive, as the store keeps every timestamp."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso_utc(value: datetime | None) -> str | None:
    """A naive UTC time from the store as ISO 8601 with its Z, as the API answers."""
    return value.isoformat() + "Z" if value is not None else None


def micros_iso(micros: int | None) -> str | None:
    """Microseconds since the epoch (UTC) as ISO 8601 with its Z."""
    return None if micros is None else iso_utc(micros_to_datetime(micros))


def now_micros(clock: datetime | None = None) -> int:
    moment = clock or datetime.now(UTC)
    return round(moment.timestamp() * 1_000_000)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
