"""The admin REST API under /api: sources, the log, imports. Bearer admin token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from tessera.dependencies import CursorQuery, RuntimeDep, require_admin
from tessera.events import importer, log
from tessera.events.sources import CHANNELS

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


class SourceCreate(BaseModel):
    name: str = Field(description="Lower-case name, e.g. 'web-shop'", examples=["web-shop"])
    channel: str = Field(description=f"One of {', '.join(CHANNELS)}", examples=["web"])


@router.get("/stats", summary="Totals of the event log")
def get_stats(runtime: RuntimeDep) -> dict[str, Any]:
    runtime.loader.sync()  # what was acknowledged is counted (docs/ingest.md)
    figures = log.stats(runtime.store)
    figures.update(runtime.pipeline.lag())
    figures["writer_queue"] = runtime.sink.queued_events
    # Crashes in the middle of a write to the log in files: cut at start, or skipped.
    figures["log_torn_tails"] = runtime.sink.log.torn_tails_cut + runtime.loader.torn_tails
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
    runtime.loader.sync()  # an event acknowledged before this read is in it
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
    runtime.loader.sync()
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
