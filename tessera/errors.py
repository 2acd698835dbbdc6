"""The TesseraError tree: a stable code, an HTTP status, and a message that helps.

A message names what failed, the offending value and what to do about it. The API
turns any TesseraError into `{"success": false, "code": ..., "message": ...}`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TesseraError(Exception):
    """Root of every error Tessera raises on purpose."""

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


class InvalidField(InvalidMessage):
    code = "invalid_field"


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


class InvalidMapping(TesseraError):
    code = "invalid_mapping"
    status = 400


class InvalidImportFile(TesseraError):
    code = "invalid_import_file"
    status = 400
