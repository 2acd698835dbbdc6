"""Console pages for the data coming in: sign-in, overview, sources (with the live
debugger and set-up snippets) and file imports. Each route gathers what the feature
functions return and renders a template; no logic of its own."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.responses import FileResponse, RedirectResponse, Response

from tessera.dependencies import ADMIN_TOKEN_ACTOR, RuntimeDep
from tessera.errors import InvalidMapping, NotFound, TesseraError
from tessera.events import failures, importer, log, reading
from tessera.events.mapping import document_from_form, parse_mapping
from tessera.events.sources import CHANNELS
from tessera.plans import service as plans
from tessera.privacy import audit, users
from tessera.privacy.attempts import FailedAttempts
from tessera.privacy.keys import secrets_match
from tessera.profiles import view
from tessera.segments import actions
from tessera.web import session
from tessera.web.rendering import render

REJECTED_PAGE = 20

public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])


# -- signing in ---------------------------------------------------------------------


@public.get("/sign-in")
def sign_in_page(request: Request, next: str = "/") -> Response:
    return render(request, "sign_in.html", sign_in_context(request, next))


@public.post("/sign-in")
def sign_in(
    request: Request,
    runtime: RuntimeDep,
    token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """A user signs in with their name and password; without a name, `token` is the admin
    token (the bootstrap). Both count failures per address and go to the audit log."""
    key: str = request.app.state.admin_token_hash
    limit: FailedAttempts = request.app.state.failed_tokens
    client = request.client.host if request.client else "unknown"
    if (wait := limit.retry_after(client)) is not None:
        error = f"Too many failed sign-ins from your address; try again in {wait} seconds."
        context = sign_in_context(request, next, error=error, name=name)
        response = render(request, "sign_in.html", context, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    user = name.strip().lower()
    if user:
        signed = users.sign_in(runtime.store, user, token)
        ok, actor, role = signed is not None, user, signed.role if signed else None
    else:
        ok = bool(token.strip()) and secrets_match(token.strip(), key)
        actor, role = ADMIN_TOKEN_ACTOR, "admin" if ok else None
    audit.record(runtime.store, actor[:64], "sign-in", None, {"via": "console"}, role=role,
                 address=client, outcome="ok" if ok else "failed")  # fmt: skip
    if not ok:
        limit.failed(client)
        problem = "That name and password do not match an enabled user." if user else (
            "That is not the admin token.")  # fmt: skip
        context = sign_in_context(request, next, error=problem, name=name)
        return render(request, "sign_in.html", context, status=401)
    limit.succeeded(client)
    response = RedirectResponse(session.safe_next(next), status_code=303)
    session.set_session(response, request, key, user)
    return response


def sign_in_context(request: Request, next: str | None, **more: object) -> dict[str, object]:
    """What the sign-in page shows: the form, and the provider's button when OIDC is set."""
    settings = request.app.state.settings
    provider = settings.oidc_provider_name if getattr(request.app.state, "oidc", None) else None
    return {"next": session.safe_next(next), "provider": provider, **more}


@public.post("/sign-out")
def sign_out() -> Response:
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(session.COOKIE)
    return response


# -- overview -----------------------------------------------------------------------


@router.get("/")
def overview(request: Request, runtime: RuntimeDep, message: str = "") -> Response:
    store = runtime.store
    daily = log.daily(store, 30)
    context = {
        "message": message,
        "failed": failures.listing(store, limit=20),
        "stats": reading.stats(runtime),
        "lag": runtime.pipeline.lag(),
        "totals": view.totals(store),
        "segments": actions.listing(runtime),
        "by_source": chart_series(daily, "source", source_colours(runtime)),
        "by_channel": chart_series(daily, "channel", CHANNEL_COLOURS),
    }
    return render(request, "overview.html", context)


@router.post("/pipeline/replay-failed")
def replay_failed(runtime: RuntimeDep) -> Response:
    result = runtime.pipeline.replay_failed()
    note = (
        f"Replayed {result.replayed} events: {len(result.still_failing)} still failing."
        if result.replayed
        else "No event was set aside."
    )
    return RedirectResponse(f"/?{urlencode({'message': note})}", status_code=303)


#: Sources take these, in the order of their names among all sources: a source keeps its
#: colour whichever days a chart shows, and on every page.
SOURCE_PALETTE = ("#3355cc", "#22a06b", "#e8a33d", "#c0392b", "#8e44ad", "#16a2b8",
                  "#d35400", "#2c3e50", "#7f8c8d", "#27ae60")  # fmt: skip
#: Channels have their own, lighter set, fixed by the channel (never a source's colour).
_CHANNEL_PALETTE = ("#7aa2ff", "#6fd3a8", "#ffc870", "#ff8a80", "#c39bd3", "#76d7ea",
                    "#f5b041", "#aab7b8", "#f1948a")  # fmt: skip
CHANNEL_COLOURS = dict(zip(CHANNELS, _CHANNEL_PALETTE, strict=True))


def source_colours(runtime: RuntimeDep) -> dict[str, str]:
    names = sorted(source.name for source in runtime.sources.list())
    return {name: SOURCE_PALETTE[i % len(SOURCE_PALETTE)] for i, name in enumerate(names)}


def chart_series(
    rows: list[dict[str, Any]], key: str, colours: dict[str, str] | None = None
) -> dict[str, Any]:
    """Daily counts → Chart.js data: one dataset per value of `key`, zeros where a day
    has none, in the value's colour from `colours` when it has one."""
    days = sorted({row["day"] for row in rows})
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        counts[row[key]][row["day"]] = counts[row[key]].get(row["day"], 0) + row["events"]
    return {
        "labels": days,
        "datasets": [
            {"label": name, "data": [per_day.get(day, 0) for day in days]}
            | ({"backgroundColor": colours[name]} if colours and name in colours else {})
            for name, per_day in sorted(counts.items())
        ],
    }


# -- sources ------------------------------------------------------------------------


@router.get("/sources")
def sources_page(request: Request, runtime: RuntimeDep, rejected: str | None = None) -> Response:
    """`rejected` is the cursor of a later page of the rejected messages."""
    return _sources(request, runtime, rejected_cursor=rejected)


@router.post("/sources")
def create_source(
    request: Request,
    runtime: RuntimeDep,
    name: Annotated[str, Form()] = "",
    channel: Annotated[str, Form()] = "",
) -> Response:
    try:
        created = runtime.sources.create(name, channel)
    except TesseraError as e:
        return _sources(request, runtime, error=e, form={"name": name, "channel": channel})
    return _source(request, runtime, created.source.name, new_key=created.write_key)


@router.get("/sources/{name}")
def source_page(
    request: Request, runtime: RuntimeDep, name: str, rejected: str | None = None
) -> Response:
    return _source(request, runtime, name, rejected_cursor=rejected)


@router.post("/sources/{name}/rotate-key")
def rotate_key(request: Request, runtime: RuntimeDep, name: str) -> Response:
    rotated = runtime.sources.rotate_key(name)
    return _source(request, runtime, rotated.source.name, new_key=rotated.write_key)


@router.post("/sources/{name}/{action}")
def enable_source(runtime: RuntimeDep, name: str, action: str) -> Response:
    if action not in ("enable", "disable"):
        return RedirectResponse(f"/sources/{name}", status_code=303)
    runtime.sources.set_enabled(name, action == "enable")
    return RedirectResponse(f"/sources/{name}", status_code=303)


@router.get("/sources/{name}/events")
def source_events(request: Request, runtime: RuntimeDep, name: str) -> Response:
    """The debugger's rows: the newest events of the source (htmx polls this)."""
    source = runtime.sources.get(name)
    events = reading.tail(runtime, limit=25, source_id=source.id).items
    return render(request, "_events.html", {"events": events, "source": source})


def _sources(
    request: Request,
    runtime: RuntimeDep,
    *,
    error: TesseraError | None = None,
    form: dict[str, str] | None = None,
    rejected_cursor: str | None = None,
) -> Response:
    sources = runtime.sources.list()
    context = {
        "sources": sources,
        "counts": {row["source"]: row["events"] for row in reading.stats(runtime)["by_source"]},
        "channels": CHANNELS,
        "rejected": reading.rejected(runtime, limit=REJECTED_PAGE, cursor=rejected_cursor),
        "rejected_first": rejected_cursor is None,
        "names": {s.id: s.name for s in sources},
        "error": error,
        "form": form or {},
    }
    return render(request, "sources.html", context, status=400 if error else 200)


def _source(
    request: Request,
    runtime: RuntimeDep,
    name: str,
    new_key: str | None = None,
    rejected_cursor: str | None = None,
) -> Response:
    source = runtime.sources.get(name)
    rejected = reading.rejected(
        runtime, limit=REJECTED_PAGE, source_id=source.id, cursor=rejected_cursor
    )
    context = {
        "source": source,
        "new_key": new_key,
        "write_key": new_key or "YOUR_WRITE_KEY",
        "host": str(request.base_url).rstrip("/"),
        "events": reading.tail(runtime, limit=25, source_id=source.id).items,
        "rejected": rejected,
        "rejected_first": rejected_cursor is None,
        "plan": _plan_of(runtime, name),
        "violations": plans.violations(runtime.store, name, 25),
    }
    return render(request, "source.html", context)


def _plan_of(runtime: RuntimeDep, name: str) -> plans.Plan | None:
    try:
        return plans.get_plan(runtime.store, name)
    except NotFound:
        return None


# -- imports ------------------------------------------------------------------------


@router.get("/imports")
def imports_page(request: Request, runtime: RuntimeDep) -> Response:
    return _imports(request, runtime)


@router.get("/imports/table")
def imports_table(request: Request, runtime: RuntimeDep) -> Response:
    imports = importer.list_imports(runtime.store, limit=20)
    return render(request, "_imports.html", {"imports": imports})


@router.post("/imports")
def upload_import(
    request: Request,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File()],
    source: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "identify",
    event: Annotated[str, Form()] = "",
    timestamp: Annotated[str, Form()] = "",
    identifiers: Annotated[str, Form()] = "",
    traits: Annotated[str, Form()] = "",
    properties: Annotated[str, Form()] = "",
    mapping_yaml: Annotated[str, Form()] = "",
) -> Response:
    form = {"source": source, "kind": kind, "event": event, "timestamp": timestamp,
            "identifiers": identifiers, "traits": traits, "properties": properties,
            "mapping_yaml": mapping_yaml}  # fmt: skip
    try:
        if mapping_yaml.strip():
            mapping = importer.load_mapping(mapping_yaml)
        else:
            document = document_from_form(
                kind=kind,
                event=event,
                timestamp=timestamp,
                identifiers=identifiers,
                traits=traits,
                properties=properties,
            )
            mapping = parse_mapping(document)
        if not file.filename:
            raise InvalidMapping("choose a file to import", field="file")
        importer.upload(
            store=runtime.store,
            writer=runtime.writer,
            source=runtime.sources.get(source),
            data=file.file,
            file_name=file.filename,
            mapping=mapping,
            data_dir=runtime.settings.data_dir,
            rejects_dir=runtime.settings.rejects_dir,
            wait=False,
        )
    except (TesseraError, yaml.YAMLError) as e:
        problem = e if isinstance(e, TesseraError) else InvalidMapping(f"mapping YAML: {e}")
        return _imports(request, runtime, error=problem, form=form)
    return RedirectResponse("/imports", status_code=303)


@router.get("/imports/{import_id}/rejects")
def import_rejects(runtime: RuntimeDep, import_id: str) -> Response:
    path = importer.reject_file(runtime.store, import_id)
    return FileResponse(path, media_type="text/csv", filename=path.name)


def _imports(
    request: Request,
    runtime: RuntimeDep,
    *,
    error: TesseraError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    context = {
        "imports": importer.list_imports(runtime.store, limit=20),
        "sources": runtime.sources.list(),
        "error": error,
        "form": form or {"kind": "identify", "identifiers": "email = email"},
    }
    return render(request, "imports.html", context, status=400 if error else 200)
