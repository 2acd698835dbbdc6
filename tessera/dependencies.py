"""The FastAPI dependencies both HTTP edges use (the admin API and the console), in a
neutral module so that neither edge imports the other."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from tessera.errors import TooManyFailures, Unauthorized
from tessera.privacy.attempts import FailedAttempts
from tessera.privacy.keys import secrets_match
from tessera.runtime import Runtime


# Both dependencies are async on purpose: they do no I/O, and a sync dependency costs
# a hop through the thread pool on every request (measured: ~2 ms of p50 under load).
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

CursorQuery = Annotated[
    str | None,
    Query(description="The next_cursor of the previous page; leave out for the first page"),
]


async def require_admin(request: Request) -> None:
    """The admin token as a bearer token; wrong ones count towards the same per-address
    limit as the console's sign-in (`privacy/attempts.py`)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected: str = request.app.state.admin_token_hash
    limit: FailedAttempts = request.app.state.failed_tokens
    client = request.client.host if request.client else "unknown"
    if (wait := limit.retry_after(client)) is not None:
        raise TooManyFailures(
            f"too many wrong admin tokens from this address; retry in {wait} seconds",
            retry_after=wait,
        )
    if scheme.lower() != "bearer" or not token or not secrets_match(token.strip(), expected):
        if token:
            limit.failed(client)
        raise Unauthorized(
            "the admin API needs 'Authorization: Bearer <admin token>'; the token is in "
            "DATA_DIR/admin-token or TESSERA_ADMIN_TOKEN"
        )
