"""Console pages for people: profile search and the 360° view (with unmerge), and
segments (list with trends, the editor with live checking, one segment, overlap)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from tessera.audiences import feeds
from tessera.dependencies import RuntimeDep
from tessera.errors import NotFound, TesseraError
from tessera.events.timestamps import utc_now
from tessera.identity import explain as identity
from tessera.identity import matching, unmerging
from tessera.identity.lookup import member_ids
from tessera.paging import Page
from tessera.predict import service as predictions
from tessera.profiles import consent, consent_changes, reader, view
from tessera.runtime import Runtime
from tessera.segments import actions, service
from tessera.web import session
from tessera.web.rendering import may_see, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])

TIMELINE_PAGE = 50
SAMPLE = 10
SEARCH_PAGE = 50
MEMBERS_PAGE = 50


# -- profiles -----------------------------------------------------------------------


@router.get("/profiles")
def profiles_page(
    request: Request, runtime: RuntimeDep, q: str = "", cursor: str | None = None
) -> Response:
    """One box: `KEY=VALUE` searches traits, anything else identifier values; `cursor`
    is a later page of the same search."""
    results: Page | None = None
    error = None
    if q.strip():
        query = {"trait": q.strip()} if "=" in q else {"identifier": q.strip()}
        try:
            results = view.search(runtime.store, limit=SEARCH_PAGE, cursor=cursor, **query)
        except TesseraError as e:
            error = e
    context = {"q": q, "results": results, "error": error, "first": not cursor}
    return render(request, "profiles.html", context, status=400 if error else 200)


@router.get("/profiles/{reference:path}")
def profile_page(
    request: Request,
    runtime: RuntimeDep,
    reference: str,
    before_seq: int | None = None,
    message: str | None = None,
) -> Response:
    store = runtime.store
    profile = reader.show(runtime, reference, TIMELINE_PAGE, before_seq)
    profile_id = profile.profile_id
    policies = runtime.settings.consent_policies()
    context = {
        "profile": profile,
        "name": view.display_name(profile.traits),
        "links": identity.links(store, profile_id),
        "memberships": service.memberships(store, profile_id),
        "third_party": feeds.of_profile(
            store, profile_id, utc_now(), runtime.settings.consent_policy("advertising")
        ),
        "predictions": predictions.person(runtime, profile_id).scores,
        "message": message,
        "reference": reference,
        "purposes": runtime.settings.consent_purposes,
        "consent_history": consent_changes.history(
            store, member_ids(store, profile_id), runtime.settings.consent_purposes
        ),
        "may_change_consent": may_see(request, "/profiles/{reference:path}/consent", "POST"),
        "consent_said": consent.answers(profile.consent, runtime.settings.consent_purposes),
        "consent_allowed": {
            purpose: consent.allows(profile.consent, purpose, policies) for purpose in policies
        },
        "consent_policies": policies,
    }
    return render(request, "profile.html", context)


@router.post("/profiles/{reference:path}/unmerge")
def unmerge(
    runtime: RuntimeDep,
    reference: str,
    first: Annotated[str, Form()],
    second: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    result = unmerging.unmerge(runtime, first, second, reason or None)
    note = f"Unmerged: {result.second} now lives in {result.second_profile}."
    return RedirectResponse(f"/profiles/{result.first_profile}?message={note}", status_code=303)


# -- probabilistic identity -------------------------------------------------------------


@router.get("/identity")
def identity_page(request: Request, runtime: RuntimeDep, message: str | None = None) -> Response:
    """The review queue (each match's evidence side by side, accept or reject), the
    button that runs the matcher, and the links it made."""
    context = {
        "queue": matching.review_queue(runtime, limit=25),
        "linked": matching.list_matches(runtime, "linked", limit=10),
        "decided": [
            *matching.list_matches(runtime, "accepted", limit=10),
            *matching.list_matches(runtime, "rejected", limit=10),
        ],
        "message": message,
        "threshold": runtime.settings.identity_match_threshold,
        "review_threshold": runtime.settings.identity_review_threshold,
    }
    return render(request, "identity.html", context)


@router.post("/identity/match")
def identity_match(runtime: RuntimeDep) -> Response:
    run = matching.match(runtime)
    note = f"Compared {run.profiles:,} profiles: {run.linked:,} linked, {run.review:,} to review."
    return RedirectResponse(f"/identity?message={note}", status_code=303)


@router.post("/identity/matches/{match_id}/{decision}")
def identity_decide(
    runtime: RuntimeDep,
    match_id: str,
    decision: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    if decision not in ("accept", "reject"):
        raise NotFound(f"no decision {decision!r}: accept or reject")
    found = matching.decide(runtime, match_id, decision == "accept", reason or None)
    note = f"{found.first} and {found.second}: {found.status}."
    return RedirectResponse(f"/identity?message={note}", status_code=303)


# -- segments -----------------------------------------------------------------------


@router.get("/segments")
def segments_page(request: Request, runtime: RuntimeDep) -> Response:
    segments = actions.listing(runtime)
    trend = size_series([actions.history(runtime, s.name) for s in segments])
    return render(request, "segments.html", {"segments": segments, "trend": trend})


def size_series(histories: list[actions.History]) -> dict[str, Any]:
    """Segment histories → Chart.js data: each segment's size at the end of every day
    on which any segment changed (carried forward between its own changes)."""
    days = sorted({day.day for h in histories for day in h.days})
    datasets = []
    for history in histories:
        sizes = {day.day: day.size for day in history.days}
        current, data = 0, []
        for day in days:
            current = sizes.get(day, current)
            data.append(current)
        datasets.append({"label": history.segment, "data": data})
    return {"labels": days, "datasets": datasets}


@router.get("/segments/new")
def new_segment(request: Request, query: str = "", name: str = "") -> Response:
    return render(request, "segment_new.html", {"query": query, "name": name})


@router.post("/segments/check")
def check_segment(
    request: Request, runtime: RuntimeDep, query: Annotated[str, Form()] = ""
) -> Response:
    """The editor's live panel (htmx, as you type): the error at its spot, or the
    description, size and a sample of members."""
    return render(request, "_check.html", check_query(runtime, query))


@router.post("/segments")
def create_segment(
    request: Request,
    runtime: RuntimeDep,
    name: Annotated[str, Form()] = "",
    query: Annotated[str, Form()] = "",
) -> Response:
    try:
        actions.create(runtime, name.strip(), query)
    except TesseraError as e:
        context = {"query": query, "name": name, "error": e, **check_query(runtime, query)}
        return render(request, "segment_new.html", context, status=400)
    return RedirectResponse(f"/segments/{name.strip()}", status_code=303)


@router.get("/segments/{name}/edit")
def edit_segment(request: Request, runtime: RuntimeDep, name: str) -> Response:
    segment = actions.show(runtime, name)
    context = {"query": segment.query, "name": name, "editing": True}
    return render(request, "segment_new.html", context)


@router.post("/segments/{name}/edit")
def update_segment(
    request: Request, runtime: RuntimeDep, name: str, query: Annotated[str, Form()] = ""
) -> Response:
    """Save a changed query (checked and run first: nothing changes when it fails)."""
    try:
        actions.update(runtime, name, query)
    except NotFound:
        raise
    except TesseraError as e:
        context = {"query": query, "name": name, "editing": True, "error": e,
                   **check_query(runtime, query)}  # fmt: skip
        return render(request, "segment_new.html", context, status=400)
    return RedirectResponse(f"/segments/{name}", status_code=303)


@router.get("/segments/overlap")
def overlap_page(request: Request, runtime: RuntimeDep) -> Response:
    return render(request, "overlap.html", overlap_matrix(actions.overlap(runtime)))


def overlap_matrix(pairs: list[actions.Overlap]) -> dict[str, Any]:
    """Pairs (first <= second, with first == second giving the size) → a full matrix."""
    names = sorted({p.first for p in pairs} | {p.second for p in pairs})
    shared = {(p.first, p.second): p.both_count for p in pairs}
    shared |= {(b, a): n for (a, b), n in shared.items()}
    rows = []
    for row in names:
        size = shared.get((row, row), 0)
        cells = [
            {"count": shared.get((row, col), 0),
             "share": round(100 * shared.get((row, col), 0) / size) if size else 0}
            for col in names
        ]  # fmt: skip
        rows.append({"name": row, "size": size, "cells": cells})
    return {"names": names, "rows": rows}


@router.get("/segments/{name}")
def segment_page(
    request: Request, runtime: RuntimeDep, name: str, why: str = "", members: str | None = None
) -> Response:
    """`members` is the cursor of a later page of the members."""
    store = runtime.store
    segment = actions.show(runtime, name)
    history = actions.history(runtime, name)
    page = actions.members(runtime, name, MEMBERS_PAGE, members)
    explanation, why_error = None, None
    if why.strip():
        try:
            explanation = actions.why(runtime, name, why.strip())
        except TesseraError as e:
            why_error = e
    context = {
        "segment": segment,
        "trend": size_series([history]),
        "days": history.days[-14:],
        "members": [
            card | member
            for card, member in zip(
                view.cards(store, [m["profile_id"] for m in page.items]), page.items, strict=True
            )
        ],
        "members_page": page,
        "members_first": members is None,
        "why": why,
        "explanation": explanation,
        "why_error": why_error,
        "exposed_by_setting": name in runtime.settings.personalize_exposed_segments,
    }
    return render(request, "segment.html", context)


@router.post("/segments/{name}/expose")
def expose_segment(
    runtime: RuntimeDep, name: str, exposed: Annotated[str, Form()] = ""
) -> Response:
    """The toggle on a segment's page: `exposed=on` exposes it to the decision API, an
    empty value stops."""
    actions.expose(runtime, name, exposed == "on")
    return RedirectResponse(f"/segments/{name}#exposure", status_code=303)


@router.post("/segments/{name}/delete")
def delete_segment(request: Request, runtime: RuntimeDep, name: str) -> Response:
    try:
        actions.delete(runtime, name)
    except NotFound:
        pass  # already gone: the list is where the user wanted to go
    except TesseraError as e:
        return render(request, "error.html", {"error": e}, status=e.status)
    return RedirectResponse("/segments", status_code=303)


def check_query(runtime: Runtime, query: str) -> dict[str, Any]:
    if not query.strip():
        return {"empty": True}
    try:
        preview = actions.preview(runtime, query, sample=SAMPLE)
    except TesseraError as e:
        return {"problem": e, "spot": error_spot(query, e)}
    return {
        "preview": preview,
        "sample": view.cards(runtime.store, preview.sample),
    }


def error_spot(query: str, error: TesseraError) -> dict[str, Any] | None:
    """Split the line an error points at into before / the word at the spot / after, so
    the page can mark it; None when the error has no position."""
    line, column = getattr(error, "line", None), getattr(error, "column", None)
    if not isinstance(line, int) or not isinstance(column, int):
        return None
    lines = query.splitlines() or [""]
    text = lines[min(line, len(lines)) - 1]
    start = min(max(column - 1, 0), len(text))
    end = start
    while end < len(text) and (text[end].isalnum() or text[end] in "_."):
        end += 1
    end = max(end, min(start + 1, len(text)))
    return {
        "line": line,
        "column": column,
        "before": text[:start],
        "word": text[start:end] or " ",
        "after": text[end:],
        "headline": error.message.split("\n")[0],
    }
