"""The admin REST API under /api: sources, the log, imports. Bearer admin token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import Field
from starlette.responses import Response

from tessera.api.responses import StrictBody, json_response
from tessera.dependencies import CursorQuery, RuntimeDep, require_admin
from tessera.events import importer, log, reading
from tessera.events.importer import Imported, ImportStarted
from tessera.events.sources import CHANNELS, SourceKey, SourceView
from tessera.paging import Page
from tessera.pipeline.runs import Stats

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


class SourceCreate(StrictBody):
    name: str = Field(description="Lower-case name, e.g. 'web-shop'", examples=["web-shop"])
    channel: str = Field(description=f"One of {', '.join(CHANNELS)}", examples=["web"])


@router.get("/stats", response_model=Stats, summary="Totals of the event log")
def get_stats(runtime: RuntimeDep) -> Response:
    figures = reading.stats(runtime) | runtime.pipeline.lag().model_dump()
    # Crashes in the middle of a write to the log in files: cut at start, or skipped.
    torn = runtime.sink.log.torn_tails_cut + runtime.loader.torn_tails
    return json_response(
        Stats(**figures, writer_queue=runtime.sink.queued_events, log_torn_tails=torn)
    )


@router.get("/sources", summary="List sources", response_model=list[SourceView])
def list_sources(runtime: RuntimeDep) -> Response:
    return json_response([source.view() for source in runtime.sources.list()])


@router.post(
    "/sources",
    status_code=201,
    summary="Create a source; the answer holds its write key",
    response_model=SourceKey,
)
def create_source(body: SourceCreate, runtime: RuntimeDep) -> Response:
    return json_response(runtime.sources.create(body.name, body.channel).view(), status=201)


@router.get("/sources/{name}", summary="One source", response_model=SourceView)
def get_source(name: str, runtime: RuntimeDep) -> Response:
    return json_response(runtime.sources.get(name).view())


@router.post(
    "/sources/{name}/rotate-key", summary="Replace a source's write key", response_model=SourceKey
)
def rotate_key(name: str, runtime: RuntimeDep) -> Response:
    return json_response(runtime.sources.rotate_key(name).view())


@router.post(
    "/sources/{name}/disable",
    summary="Stop accepting events for a source",
    response_model=SourceView,
)
def disable_source(name: str, runtime: RuntimeDep) -> Response:
    return json_response(runtime.sources.set_enabled(name, False).view())


@router.post(
    "/sources/{name}/enable", summary="Accept events for a source again", response_model=SourceView
)
def enable_source(name: str, runtime: RuntimeDep) -> Response:
    return json_response(runtime.sources.set_enabled(name, True).view())


@router.get(
    "/events", response_model=Page, summary="A page of the event log, newest first, with the total"
)
def tail_events(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=log.EVENTS_PAGE_MAX)] = 20,
    source: str | None = None,
    after_seq: Annotated[
        int | None, Query(description="The events after this sequence number, oldest first")
    ] = None,
    cursor: CursorQuery = None,
) -> Response:
    source_id = runtime.sources.get(source).id if source else None
    return json_response(
        reading.tail(runtime, limit=limit, source_id=source_id, after_seq=after_seq, cursor=cursor)
    )


@router.get(
    "/events/rejected",
    response_model=Page,
    summary="A page of dead-lettered messages with their reasons",
)
def rejected_events(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=log.REJECTED_PAGE_MAX)] = 50,
    source: str | None = None,
    cursor: CursorQuery = None,
) -> Response:
    source_id = runtime.sources.get(source).id if source else None
    found = reading.rejected(runtime, limit=limit, source_id=source_id, cursor=cursor)
    return json_response(found)


@router.get(
    "/imports", response_model=Page, summary="A page of the imports, newest first, with progress"
)
def list_imports(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=importer.IMPORTS_PAGE_MAX)] = 20,
    cursor: CursorQuery = None,
) -> Response:
    return json_response(importer.imports_page(runtime.store, limit=limit, cursor=cursor))


@router.post(
    "/imports",
    summary="Upload a CSV, JSON-lines or Parquet file with its mapping",
    response_model=Imported | ImportStarted,
)
def upload_import(
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="The data file")],
    mapping: Annotated[str, Form(description="The mapping, as YAML text")],
    source: Annotated[str, Form(description="Source name")],
    wait: Annotated[bool, Form(description="Answer when the import has finished")] = True,
) -> Response:
    return json_response(
        importer.upload(
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
    )
