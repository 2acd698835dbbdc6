"""The transports: how one batch of Segment-spec messages reaches one kind of destination.

A connector is the plug-in point (`Connector`): `send(batch)` makes one attempt and says
what happened as an `Outcome`, without retrying (the worker decides, `backoff.py`); it
never raises for what the destination answers. `idle()` lets a connector act on time
(the files connector rolls its file), `close()` releases what it holds. Each HTTP
connector takes an `httpx.BaseTransport`, so a test can hand it a local server or
`httpx.MockTransport`. `docs/activation.md` shows how to write a new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import orjson

from tessera import __version__
from tessera.activation.backoff import parse_retry_after
from tessera.activation.options import DestinationOptions

Message = dict[str, Any]
BODY_EXCERPT = 500
SIGNATURE_HEADER = "X-Tessera-Signature"


@dataclass(frozen=True)
class Outcome:
    """One attempt: the status (None when nothing answered), an excerpt of the answer's
    body or the error, how long the destination asked us to wait, and how long it took."""

    status: int | None
    detail: str = ""
    retry_after: float | None = None
    seconds: float = 0.0


class Connector(Protocol):
    def send(self, batch: Sequence[Message]) -> Outcome: ...

    def idle(self) -> None: ...

    def close(self) -> None: ...


class Deletes(Protocol):
    """A connector that can ask its destination to forget a person (an erasure request,
    tessera/governance/erasure.py): one attempt, answered as an Outcome."""

    def delete(self, request: Message) -> Outcome: ...


def sign(body: bytes, secret: str) -> str:
    """The X-Tessera-Signature value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HttpConnector:
    """POSTs `{"batch": [...], "sentAt": ...}` to a URL; the webhook and Segment kinds."""

    def __init__(
        self,
        url: str,
        options: DestinationOptions,
        *,
        secret: str | None = None,
        auth_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"tessera/{__version__}", "Content-Type": "application/json",
                   **options.headers}  # fmt: skip
        if auth_key is not None:  # Segment's HTTP API: the write key as the Basic user
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth_key}:".encode()).decode()
        self.url = url
        self.secret = secret
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(options.timeout_seconds),
            transport=transport,
            limits=httpx.Limits(max_connections=options.concurrency * 2),
        )

    def send(self, batch: Sequence[Message]) -> Outcome:
        sent_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body = orjson.dumps({"batch": list(batch), "sentAt": sent_at})
        headers = {SIGNATURE_HEADER: sign(body, self.secret)} if self.secret else {}
        return post(self.client, self.url, body, headers)

    def delete(self, request: Message) -> Outcome:
        """`DELETE` the URL with `{"type": "delete", "requestId", "userId"?, "identifiers":
        [{"type", "value"}...]}`, signed like a batch: the receiver forgets the person."""
        body = orjson.dumps(request)
        headers = {SIGNATURE_HEADER: sign(body, self.secret)} if self.secret else {}
        return post(self.client, self.url, body, headers, method="DELETE")

    def idle(self) -> None:
        return None

    def close(self) -> None:
        self.client.close()


def post(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], method: str = "POST"
) -> Outcome:
    """One request; its answer (or the failure to get one) as an Outcome."""
    started = time.monotonic()
    try:
        response = client.request(method, url, content=body, headers=dict(headers))
    except httpx.HTTPError as e:
        return Outcome(None, f"{type(e).__name__}: {e}"[:BODY_EXCERPT], None,
                       time.monotonic() - started)  # fmt: skip
    seconds = time.monotonic() - started
    retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    return Outcome(response.status_code, response.text[:BODY_EXCERPT], retry_after, seconds)
