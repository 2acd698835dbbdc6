"""The TesseraError tree: a stable code, an HTTP status, and a message that helps.

A message names what failed, the offending value and what to do about it. The API
turns any TesseraError into `{"success": false, "code": ..., "message": ...}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import ValidationError
from pydantic_core import PydanticCustomError


class TesseraError(Exception):
    """Root of every error Tessera raises on purpose.

    Never raised itself: each error is a subclass in one of the branches below, so
    its `code` says what went wrong and its `status` whose fault it is (4xx: the
    request's; 5xx: the server's). tests/unit/test_errors.py keeps it so.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidRequest(TesseraError):
    code = "invalid_request"
    status = 400


class InvalidJson(InvalidRequest):
    code = "invalid_json"


class InvalidGzip(InvalidRequest):
    code = "invalid_gzip"


class InvalidCursor(InvalidRequest):
    """A paging cursor that this list did not hand out (or that was altered)."""

    code = "invalid_cursor"


class InvalidField(InvalidRequest):
    """A value of the request (a parameter, a body field, a definition's key) that
    cannot be used; `field` names it."""

    code = "invalid_field"


class SegmentNameReserved(InvalidField):
    """A segment name that is a word of the API's or the console's paths (`overlap`,
    `new`, ...): its page and its API path would answer for the route instead."""

    code = "segment_name_reserved"


class UnreadableFile(InvalidRequest):
    """A file the user named that is missing or cannot be read or parsed."""

    code = "unreadable_file"


class InvalidMapping(InvalidRequest):
    """An import mapping (YAML or the console's form) that cannot be used."""

    code = "invalid_mapping"


class InvalidImportFile(InvalidRequest):
    """An import file (or one of its rows) that cannot be read as the mapping says."""

    code = "invalid_import_file"


class BodyTooLarge(TesseraError):
    code = "body_too_large"
    status = 413


class InvalidMessage(InvalidRequest):
    """One message broke the event contract; `code` says which rule."""

    code = "invalid_message"


class MissingIdentity(InvalidMessage):
    code = "missing_identity"


class MissingField(InvalidMessage):
    code = "missing_field"


class InvalidMessageField(InvalidMessage):
    """A field of one message that breaks the event contract (a wrong type, an empty
    identifier...); `field` names it."""

    code = "invalid_message_field"


class InvalidTimestamp(InvalidMessage):
    code = "invalid_timestamp"


class UnknownType(InvalidMessage):
    code = "unknown_type"


class MessageTooLarge(InvalidMessage):
    code = "message_too_large"


class MessageTooDeep(InvalidMessage):
    code = "message_too_deep"


class Unauthorized(TesseraError):
    code = "unauthorized"
    status = 401


class MissingWriteKey(Unauthorized):
    code = "missing_write_key"


class InvalidWriteKey(Unauthorized):
    code = "invalid_write_key"


class InvalidPublishableKey(Unauthorized):
    """The decision API takes a publishable key (`tpk_`), never a write key or the admin
    token."""

    code = "invalid_publishable_key"


class Forbidden(TesseraError):
    code = "forbidden"
    status = 403


class SourceDisabled(Forbidden):
    code = "source_disabled"


class NotFound(TesseraError):
    code = "not_found"
    status = 404


class Conflict(TesseraError):
    code = "conflict"
    status = 409


class Overloaded(TesseraError):
    """The writer's queue is full: the client should retry after `retry_after` seconds."""

    code = "overloaded"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyFailures(Overloaded):
    """Too many wrong admin tokens from one client address: retry after `retry_after` s."""

    code = "too_many_failures"


class StoreUnavailable(TesseraError):
    code = "store_unavailable"
    status = 503


class StoreLocked(StoreUnavailable):
    code = "store_locked"


class SchemaTooNew(StoreUnavailable):
    """The data directory was written by a newer Tessera: this one refuses to open it."""

    code = "schema_too_new"


class LogFull(StoreUnavailable):
    """The event log could not be appended to for want of disk space: nothing of the
    request was acknowledged; the client retries once space is freed."""

    code = "insufficient_storage"
    status = 507


class ServerFailure(TesseraError):
    """The server could not do what was asked, through no fault of the request."""

    code = "internal"
    status = 500


class ImportFailed(ServerFailure):
    """An import the server ran in the background failed or was interrupted."""

    code = "import_failed"


def worded(message: str) -> PydanticCustomError:
    """A problem a definition's own validator words, for pydantic to collect with the
    others (raised inside a pydantic validator; `field_problem` keeps the words)."""
    return PydanticCustomError("worded", "{message}", {"message": message})


def field_problem(
    error: ValidationError,
    document: Mapping[Any, Any],
    messages: Mapping[str, Callable[[Any], str]],
    unknown: Callable[[list[str]], str],
    kind: type[InvalidRequest] = InvalidField,
) -> InvalidRequest:
    """Our error for the first problem pydantic found in a definition `document`.

    Keys the model does not know come first (`unknown` words them), then the first field
    that failed, in the model's order: a validator's own words (`worded`), or the
    wording `messages` gives its field from the value found; pydantic's words last.
    """
    problems = error.errors()
    extra = sorted(
        str(p["loc"][0]) for p in problems if p["type"] in ("extra_forbidden", "invalid_key")
    )
    if extra:
        return kind(unknown(extra), field=extra[0], value=extra)
    first = problems[0]
    field = str(first["loc"][0]) if first["loc"] else None
    value = document.get(field) if field is not None else document
    if first["type"] == "worded":
        return kind(first["msg"], field=field, value=value)
    if field is not None and field in messages:
        return kind(messages[field](value), field=field, value=value)
    where = ".".join(str(part) for part in first["loc"])  # no wording of ours: pydantic's
    return kind(f"{where}: {first['msg']} (got {first.get('input')!r})", field=where or None)
