"""Admin API for the DMP side: audience exports to ad platforms."""

from __future__ import annotations

import io
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from tessera.api.admin import RuntimeDep, require_admin
from tessera.audiences import exports

router = APIRouter(prefix="/api/audiences", dependencies=[Depends(require_admin)])


@router.post("/purge", summary="Purge anonymous profiles past their lifetime")
def purge(runtime: RuntimeDep, dry_run: bool = False) -> dict[str, Any]:
    """Anonymous profiles (only cookie, device, ad or synced ids) not seen for their
    lifetime, with their events. Runs by itself every hour inside `tessera serve`."""
    return runtime.pipeline.purge_expired(dry_run=dry_run)


@router.get(
    "/{segment}/export",
    summary="A segment as a Google Customer Match, Meta Custom Audience or OpenRTB file",
    response_class=Response,
)
def export_segment(
    segment: str,
    runtime: RuntimeDep,
    file_format: Annotated[str, Query(alias="format", description=" | ".join(exports.FORMATS))],
) -> Response:
    """The file is the body; what was exported (members, refused for consent...) is in the
    `X-Tessera-Export` header as JSON."""
    buffer = io.StringIO()
    summary = exports.export(
        runtime.store, segment, file_format, buffer, runtime.settings.advertising_consent
    )
    suffix = "jsonl" if file_format == "openrtb" else "csv"
    return Response(
        buffer.getvalue(),
        media_type=exports.MEDIA_TYPES[file_format],
        headers={
            "X-Tessera-Export": orjson.dumps(summary).decode(),
            "Content-Disposition": f'attachment; filename="{segment}-{file_format}.{suffix}"',
        },
    )
