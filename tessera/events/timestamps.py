"""ISO-8601 timestamps as sent by Segment clients, and Segment's clock-skew correction.

Times are kept as integer microseconds since the Unix epoch (UTC) on the hot path:
they go straight into Arrow `timestamp[us]` columns without building datetimes twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tessera.errors import InvalidTimestamp

_MIN_MICROS = 0  # 1970-01-01: earlier is a clock reset or a zero value, not an event
_MAX_MICROS = 4_102_444_800_000_000  # 2100-01-01: later is a client bug, not an event
#: How far after its receipt an event time may fall: a server clock a little fast, or a
#: local time sent as UTC (up to 14 hours); later than this no event can have happened.
FUTURE_TOLERANCE_MICROS = 86_400 * 1_000_000


def parse_timestamp(value: object, field: str) -> int:
    """Parse an ISO-8601 string into UTC microseconds; naive times are taken as UTC.

    Any time the calendar holds is accepted here (year 1 to 9999); whether it is a
    plausible event time is `event_time`'s decision.

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
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # Exact integer arithmetic: a float of seconds loses microseconds far from 1970.
        return (parsed - _EPOCH) // _ONE_MICROSECOND
    except (ValueError, OverflowError):
        # OverflowError: a time at the calendar's edge whose offset moves it past year 9999.
        raise InvalidTimestamp(
            f"{field} {_show(value)} is not an ISO-8601 timestamp; "
            "send e.g. '2024-05-01T12:00:00.000Z'",
            field=field,
            value=value,
        ) from None


def event_time(
    client_time: int | None, sent_at: int | None, received_at: int
) -> tuple[int, str | None]:
    """The time to store for an event (the client's, corrected for clock skew, if
    plausible) and, when it is not that, why (a plain tuple: this runs per message).

    Segment's skew correction shifts the client's time by (receivedAt - sentAt): a device
    whose clock is an hour fast sends sentAt an hour ahead, the same error is in its event
    times, and subtracting it recovers the true time (a device reset to 1970 too).

    The result must fall between 1970-01-01 and a day after the server received the
    message. When it does not (a timestamp in 2099 sent with a sentAt in 1970 would be
    corrected to 2156; a plain timestamp in 2099 or in year 1), the client's clock cannot
    be trusted and the receive time is stored instead, with the reason: a profile's
    last_seen must never sit in 2156, out of reach of its lifetime.
    """
    if client_time is None:
        return received_at, None
    corrected = client_time if sent_at is None else client_time + (received_at - sent_at)
    if _MIN_MICROS <= corrected <= received_at + FUTURE_TOLERANCE_MICROS:
        return corrected, None
    where = "before 1970" if corrected < _MIN_MICROS else "more than a day after it was received"
    if sent_at is None:
        told = f"the client's time {_iso_or_raw(client_time)} is {where}"
    else:
        told = (
            f"the client's time {_iso_or_raw(client_time)} corrected for the clock skew "
            f"that sentAt {_iso_or_raw(sent_at)} shows is {_iso_or_raw(corrected)}, {where}"
        )
    return received_at, f"{told}; the receive time is stored instead"


def plausible(micros: int | None) -> int | None:
    """A client-given time as stored beside the event (originalTimestamp, sentAt): kept
    when it lies in 1970-2099, None otherwise (the payload keeps what was sent)."""
    if micros is None or not _MIN_MICROS <= micros < _MAX_MICROS:
        return None
    return micros


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _iso_or_raw(micros: int) -> str:
    try:
        return (_EPOCH + micros * _ONE_MICROSECOND).isoformat().replace("+00:00", "Z")
    except OverflowError:  # corrected past year 9999
        return f"{micros} µs after 1970"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
