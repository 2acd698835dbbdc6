"""The collect use case: one HTTP request of the Segment wire format into the sink.

The API layer hands over bytes and headers; this module authenticates, decodes,
validates and submits, and says what to answer. It holds no HTTP types, so the
importer and tests call it too.
"""

from __future__ import annotations

import base64
import binascii
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from tessera.errors import InvalidField, InvalidMessage, InvalidTimestamp, MissingWriteKey
from tessera.events.body import decode_body
from tessera.events.contract import Envelope, EventRow, Rejection, check_message, reject
from tessera.events.sink import DeadLetter, Sink, WriteResult
from tessera.events.sources import Source
from tessera.events.timestamps import parse_timestamp

log = logging.getLogger(__name__)


class Suppression(Protocol):
    """Says whether an accepted event carries an identifier that an erasure or suppression
    request forbids keeping (`tessera.governance.suppression.PublishedSuppression`)."""

    def drops(self, row: EventRow) -> bool: ...


#: the dead letters' code for an event dropped because it names a suppressed person: the
#: row counts it and keeps nothing of the event (no payload, no message id)
SUPPRESSED = "suppressed"


class Keys(Protocol):
    """Resolves a write key to its enabled source: the store's `SourceDirectory` in the
    core process, the published file (`source_keys.PublishedKeys`) in a collector."""

    def authenticate(self, write_key: str) -> Source: ...


@dataclass(frozen=True, slots=True)
class Submission:
    """What was handed to the sink; `error` is set for a refused single message,
    which is dead-lettered and then answered with its 400."""

    future: Future[WriteResult]
    error: InvalidMessage | None = None


class Collector:
    def __init__(
        self,
        directory: Keys,
        sink: Sink,
        *,
        max_body_bytes: int,
        max_message_bytes: int,
        suppression: Suppression | None = None,
    ) -> None:
        self._directory = directory
        self._sink = sink
        self._max_body = max_body_bytes
        self._max_message = max_message_bytes
        self._suppression = suppression
        #: events dropped in this process because they named a suppressed person
        self.suppressed = 0

    def submit(
        self,
        body: bytes,
        *,
        message_type: str | None,
        authorization: str | None,
        content_encoding: str | None,
        received_at: int,
    ) -> Submission:
        """Validate a request and queue what it carries.

        Args:
            message_type: the endpoint's type ('track', ...) or None for a batch.
            received_at: the server's clock when the request arrived, µs UTC.

        Raises:
            TesseraError for request-level problems (auth, body, JSON shape) and
            Overloaded when the sink's queue is full.
        """
        document = decode_body(body, content_encoding, self._max_body)
        if not isinstance(document, dict):
            raise InvalidField(
                f"request body must be a JSON object, got {type(document).__name__}",
                field="body",
            )
        source = self._authenticate(authorization, document.get("writeKey"))
        sent_at, sent_at_problem = None, None
        if document.get("sentAt") is not None and message_type is None:
            try:
                sent_at = parse_timestamp(document["sentAt"], "sentAt")
            except InvalidTimestamp as e:  # it only serves skew correction: never fatal
                sent_at_problem = f"the batch's {e.message}; no clock-skew correction"
        envelope = Envelope(
            source.id, source.channel, received_at, sent_at, sent_at_problem=sent_at_problem
        )
        if message_type is None:
            messages = document.get("batch")
            if not isinstance(messages, list):
                raise InvalidField(
                    "batch requests carry {\"batch\": [message, ...]}; 'batch' is "
                    + ("missing" if messages is None else f"a {type(messages).__name__}"),
                    field="batch",
                )
        else:
            messages = [document]
        rows, dead = self._check_all(messages, envelope, message_type)
        refused = [letter for letter in dead if letter.rejection.code != SUPPRESSED]
        error = None
        if message_type is not None and refused:
            error = _error_of(refused[0])
        # A dropped suppressed event is answered 200 like a kept one: a 4xx would tell the
        # sender something about the person, and some SDKs retry what is refused.
        return Submission(self._sink.submit(rows, dead), error)

    def submit_messages(
        self, write_key: str, messages: list[dict[str, Any]], *, received_at: int
    ) -> Submission:
        """Messages built by the server itself (the pixel, cookie syncs) for the source
        this write key belongs to. They may be identified by an external id alone (a
        cookie_id), like imported rows."""
        source = self._directory.authenticate(write_key)
        envelope = Envelope(source.id, source.channel, received_at, require_segment_ids=False)
        rows, dead = self._check_all(messages, envelope, None)
        refused = [letter for letter in dead if letter.rejection.code != SUPPRESSED]
        error = _error_of(refused[0]) if refused else None
        return Submission(self._sink.submit(rows, dead), error)

    def _check_all(
        self, messages: list[Any], envelope: Envelope, message_type: str | None
    ) -> tuple[list[EventRow], list[DeadLetter]]:
        rows: list[EventRow] = []
        dead: list[DeadLetter] = []
        for message in messages:
            try:
                rows.append(
                    check_message(
                        message, envelope, default_type=message_type, max_bytes=self._max_message
                    )
                )
            except (InvalidMessage, InvalidTimestamp) as e:
                dead.append(
                    DeadLetter(envelope.source_id, envelope.received_at, reject(message, e))
                )
            except Exception as e:  # a defect of ours must not poison the message's batch
                # The type only: the message itself may hold personal data.
                log.error(
                    "checking a message failed with %s; it is dead-lettered", type(e).__name__
                )
                error = InvalidMessage(
                    f"the message could not be checked ({type(e).__name__}); it is kept in "
                    "the dead letters: please report it"
                )
                dead.append(
                    DeadLetter(envelope.source_id, envelope.received_at, reject(message, error))
                )
        if self._suppression is not None and rows:
            rows = self._drop_suppressed(rows, envelope, dead)
        return rows, dead

    def _drop_suppressed(
        self, rows: list[EventRow], envelope: Envelope, dead: list[DeadLetter]
    ) -> list[EventRow]:
        """The rows that name no suppressed person; each other one is counted (a dead
        letter holding nothing of it) and not stored, so an SDK that keeps sending does
        not bring an erased person back."""
        assert self._suppression is not None
        kept = [row for row in rows if not self._suppression.drops(row)]
        dropped = len(rows) - len(kept)
        if dropped:
            self.suppressed += dropped
            rejection = Rejection(
                SUPPRESSED, None, "the event names a suppressed person; it was not kept", None, ""
            )
            letter = DeadLetter(envelope.source_id, envelope.received_at, rejection)
            dead.extend([letter] * dropped)
        return kept

    def _authenticate(self, authorization: str | None, body_key: object) -> Source:
        key = _key_from_header(authorization)
        if key is None and isinstance(body_key, str) and body_key:
            key = body_key
        if key is None:
            raise MissingWriteKey(
                "no write key: send it as the HTTP Basic user name (password empty) "
                'or as "writeKey" in the body'
            )
        return self._directory.authenticate(key)


def _key_from_header(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return credentials.strip() or None
    if scheme != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def _error_of(letter: DeadLetter) -> InvalidMessage:
    rejection = letter.rejection
    error = InvalidMessage(rejection.reason, field=rejection.field)
    error.code = rejection.code  # type: ignore[misc]
    return error
