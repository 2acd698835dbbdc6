"""What an operator's tools call: health (/healthz, /readyz), metrics (/metrics) and
backups (GET /api/backup). docs/deploy.md shows them in use."""

from __future__ import annotations

import tarfile
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from tessera.api.responses import json_response
from tessera.dependencies import RuntimeDep, require_admin
from tessera.errors import Unauthorized
from tessera.operations import backup, health
from tessera.operations.metrics import CONTENT_TYPE, Metrics
from tessera.privacy.keys import hash_secret, secrets_match

probes = APIRouter()
admin = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


@probes.get("/healthz", include_in_schema=False, response_model=health.Alive)
async def healthz() -> Response:
    """The process answers (liveness): no store, no lock, nothing that can hang."""
    return json_response(health.alive())


@probes.get("/readyz", include_in_schema=False, response_model=health.Readiness)
def readyz(runtime: RuntimeDep) -> Response:
    """Ready for traffic: 200, or 503 with the checks that fail."""
    ready = health.readiness(runtime)
    return json_response(ready, 200 if ready.ready else 503)


async def require_metrics_reader(request: Request) -> None:
    """The metrics token (TESSERA_METRICS_TOKEN) or, failing it, the admin token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    wanted = request.app.state.settings.metrics_token
    if scheme.lower() == "bearer" and wanted and secrets_match(token.strip(), hash_secret(wanted)):
        return
    try:
        await require_admin(request)
    except Unauthorized as e:
        raise Unauthorized(
            "/metrics needs 'Authorization: Bearer <token>': TESSERA_METRICS_TOKEN, or the "
            "admin token"
        ) from e


# Not in the OpenAPI document: a scrape target in Prometheus's text format, not the API.
@probes.get("/metrics", include_in_schema=False, dependencies=[Depends(require_metrics_reader)])
def metrics(request: Request) -> Response:
    collected: Metrics = request.app.state.metrics
    return Response(collected.render(), media_type=CONTENT_TYPE)


@admin.get(
    "/backup",
    summary="A consistent snapshot of the data directory, as a tar archive",
    response_class=Response,
    responses={200: {"content": {"application/x-tar": {}}, "description": "the archive"}},
)
def get_backup(
    runtime: RuntimeDep,
    folder: Annotated[
        str | None,
        Query(description="Where the client unpacks it (an absolute path on this machine), "
              "registered so that an erasure reports the backups still holding the person"),
    ] = None,
) -> Response:  # fmt: skip
    """Taken while the server runs (ingest goes on; the loader waits while the store and
    the log are copied); `tessera backup --to DIR` unpacks it. Its backup.json says what
    it holds."""
    target = backup.check_folder_note(folder)
    spool = runtime.settings.data_dir / "run"
    spool.mkdir(mode=0o700, exist_ok=True)
    path = spool / f"backup-{uuid.uuid4().hex}.tar"
    try:
        with tarfile.open(path, "w") as archive:
            taken = backup.take(runtime, backup.TarSink(archive), target)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    name = f"tessera-backup-{taken.taken_at.replace(':', '').replace('+0000', 'Z')}.tar"
    return FileResponse(
        path,
        media_type="application/x-tar",
        filename=name,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
