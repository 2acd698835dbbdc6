"""The admin REST API under /api: sources, the log, imports. Bearer admin token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field

from tessera.errors import TooManyFailures, Unauthorized
from tessera.events import importer, log
from tessera.events.sources import CHANNELS
from tessera.privacy.attempts import FailedAttempts
from tessera.privacy.keys import secrets_match
from tessera.runtime import Runtime


# Both dependencies are async on purpose: they do no I/O, and a sync dependency costs
# a hop through the thread pool on every request (measured: ~2 ms of p50 under load).
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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


router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


class SourceCreate(BaseModel):
    name: str = Field(description="Lower-case name, e.g. 'web-shop'", examples=["web-shop"])
    channel: str = Field(description=f"One of {', '.join(CHANNELS)}", examples=["web"])


@router.get("/stats", summary="Totals of the event log")
def get_stats(runtime: RuntimeDep) -> dict[str, Any]:
    figures = log.stats(runtime.store)
    figures.update(runtime.pipeline.lag())
    figures["writer_queue"] = runtime.writer.queued_events
    return figures


@router.get("/sources", summary="List sources")
def list_sources(runtime: RuntimeDep) -> list[dict[str, Any]]:
    return [source.to_dict() for source in runtime.sources.list()]


@router.post("/sources", status_code=201, summary="Create a source; the answer holds its write key")
def create_source(body: SourceCreate, runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.sources.create(body.name, body.channel).to_dict()


@router.get("/sources/{name}", summary="One source")
def get_source(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.sources.get(name).to_dict()


@router.post("/sources/{name}/rotate-key", summary="Replace a source's write key")
def rotate_key(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.sources.rotate_key(name).to_dict()


@router.post("/sources/{name}/disable", summary="Stop accepting events for a source")
def disable_source(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.sources.set_enabled(name, False).to_dict()


@router.post("/sources/{name}/enable", summary="Accept events for a source again")
def enable_source(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.sources.set_enabled(name, True).to_dict()


CursorQuery = Annotated[
    str | None,
    Query(description="The next_cursor of the previous page; leave out for the first page"),
]


@router.get("/events", summary="A page of the event log, newest first, with the total")
def tail_events(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=log.EVENTS_PAGE_MAX)] = 20,
    source: str | None = None,
    after_seq: Annotated[
        int | None, Query(description="The events after this sequence number, oldest first")
    ] = None,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    source_id = runtime.sources.get(source).id if source else None
    return log.tail(
        runtime.store, limit=limit, source_id=source_id, after_seq=after_seq, cursor=cursor
    ).to_dict()


@router.get("/events/rejected", summary="A page of dead-lettered messages with their reasons")
def rejected_events(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=log.REJECTED_PAGE_MAX)] = 50,
    source: str | None = None,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    source_id = runtime.sources.get(source).id if source else None
    return log.rejected(runtime.store, limit=limit, source_id=source_id, cursor=cursor).to_dict()


@router.get("/imports", summary="Imports, newest first, with progress")
def list_imports(runtime: RuntimeDep) -> list[dict[str, Any]]:
    return importer.list_imports(runtime.store)


@router.post("/imports", summary="Upload a CSV, JSON-lines or Parquet file with its mapping")
def upload_import(
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="The data file")],
    mapping: Annotated[str, Form(description="The mapping, as YAML text")],
    source: Annotated[str, Form(description="Source name")],
    wait: Annotated[bool, Form(description="Answer when the import has finished")] = True,
) -> dict[str, Any]:
    return importer.upload(
        store=runtime.store,
        writer=runtime.writer,
        source=runtime.sources.get(source),
        data=file.file,
        file_name=file.filename or "upload.csv",
        mapping=importer.load_mapping(mapping),
        data_dir=runtime.settings.data_dir,
        rejects_dir=runtime.settings.rejects_dir,
        wait=wait,
    )
