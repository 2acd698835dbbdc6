"""Console pages for the DMP side: taxonomies and third-party segments, the audience builder
with its population, lookalikes with their reach-accuracy chart, and campaign reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from tessera.audiences import campaigns, feeds, lookalike, taxonomy
from tessera.dependencies import RuntimeDep
from tessera.errors import InvalidField, TesseraError
from tessera.events.timestamps import utc_now
from tessera.segments import actions
from tessera.web import session
from tessera.web.people import check_query
from tessera.web.rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])


@router.get("/audiences")
def audiences_page(request: Request, runtime: RuntimeDep) -> Response:
    store = runtime.store
    context = {
        "taxonomies": taxonomy.taxonomies(store),
        "third_party": feeds.segments(store, utc_now()),
        "lookalikes": lookalike.list_lookalikes(store),
        "report": campaigns.report(store),
    }
    return render(request, "audiences.html", context)


@router.get("/audiences/taxonomy/{name}")
def taxonomy_page(
    request: Request, runtime: RuntimeDep, name: str, parent: str | None = None, search: str = ""
) -> Response:
    nodes = taxonomy.browse(runtime.store, name, parent=parent, search=search or None)
    trail = _trail(runtime, name, parent)
    context = {"name": name, "nodes": nodes, "trail": trail, "search": search, "parent": parent}
    return render(request, "taxonomy.html", context)


def _trail(runtime: RuntimeDep, name: str, node: str | None) -> list[dict[str, Any]]:
    """The node and its ancestors, root first, for the breadcrumb."""
    if not node:
        return []
    return runtime.store.fetch_dicts(
        "SELECT n.id, n.name FROM taxonomy_closure c JOIN taxonomy_nodes n "
        "ON n.taxonomy = c.taxonomy AND n.id = c.ancestor "
        "WHERE c.taxonomy = ? AND c.descendant = ? ORDER BY n.tier",
        [name, node],
    )


@router.get("/audiences/new")
def builder_page(request: Request, population: str = "all", query: str = "") -> Response:
    context = {"population": population, "query": query, "name": ""}
    return render(request, "audience_new.html", context)


def compose(population: str, query: str) -> str:
    """The builder's population choice joined to the conditions written below it."""
    conditions = query.strip()
    if population not in ("anonymous", "known"):
        return conditions
    return f"{population} and ({conditions})" if conditions else population


@router.post("/audiences/check")
def builder_check(
    request: Request,
    runtime: RuntimeDep,
    population: Annotated[str, Form()] = "all",
    query: Annotated[str, Form()] = "",
) -> Response:
    return render(request, "_check.html", check_query(runtime, compose(population, query)))


@router.post("/audiences")
def builder_save(
    request: Request,
    runtime: RuntimeDep,
    name: Annotated[str, Form()] = "",
    population: Annotated[str, Form()] = "all",
    query: Annotated[str, Form()] = "",
) -> Response:
    full = compose(population, query)
    try:
        actions.create(runtime, name.strip(), full)
    except TesseraError as e:
        context = {"population": population, "query": query, "name": name, "error": e,
                   **check_query(runtime, full)}  # fmt: skip
        return render(request, "audience_new.html", context, status=400)
    return RedirectResponse(f"/segments/{name.strip()}", status_code=303)


@router.get("/audiences/lookalikes/new")
def lookalike_form(request: Request, runtime: RuntimeDep, seed: str = "") -> Response:
    segments = actions.listing(runtime)
    return render(request, "lookalike_new.html", {"segments": segments, "form": {"seed": seed}})


@router.post("/audiences/lookalikes")
def lookalike_create(
    request: Request,
    runtime: RuntimeDep,
    name: Annotated[str, Form()] = "",
    seed: Annotated[str, Form()] = "",
    reach: Annotated[str, Form()] = "",
    accuracy: Annotated[str, Form()] = "",
    method: Annotated[str, Form()] = "weights",
    population: Annotated[str, Form()] = "all",
) -> Response:
    form = {"name": name, "seed": seed, "reach": reach, "accuracy": accuracy,
            "method": method, "population": population}  # fmt: skip
    try:
        lookalike.create(
            runtime.store,
            name.strip(),
            seed,
            now=utc_now(),
            reach=_number(reach, int, "reach"),
            accuracy=_number(accuracy, float, "accuracy"),
            method=method,
            population=population,
            policy=runtime.settings.consent_policy("advertising"),
        )
    except TesseraError as e:
        segments = actions.listing(runtime)
        context = {"segments": segments, "form": form, "error": e}
        return render(request, "lookalike_new.html", context, status=400)
    return RedirectResponse(f"/audiences/lookalikes/{name.strip()}", status_code=303)


def _number(text: str, kind: type, field: str) -> Any:
    if not text.strip():
        return None
    try:
        return kind(text.strip())
    except ValueError:
        raise InvalidField(f"{field} {text!r} is not a number", field=field, value=text) from None


@router.get("/audiences/lookalikes/{name}")
def lookalike_page(request: Request, runtime: RuntimeDep, name: str) -> Response:
    report = lookalike.get(runtime.store, name)
    curve = report.evaluation["curve"]
    chart = {
        "labels": [f"{p['reach']:,} ({p['reach_share']:.1%})" for p in curve],
        "datasets": [
            {"label": "held-out seed found (recall)", "data": [p["recall"] for p in curve]},
        ],
    }
    return render(request, "lookalike.html", {"report": report, "chart": chart})


@router.get("/audiences/campaigns/{campaign}")
def campaign_page(request: Request, runtime: RuntimeDep, campaign: str) -> Response:
    rows = campaigns.report(runtime.store, campaign=campaign)
    days = campaigns.daily(runtime.store, campaign)
    labels = sorted({d.day for d in days})
    audiences = sorted({d.audience or "(none)" for d in days})

    def series(metric: str) -> dict[str, Any]:
        values = {((d.audience or "(none)"), d.day): getattr(d, metric) for d in days}
        return {"labels": labels, "datasets": [
            {"label": a, "data": [values.get((a, day), 0) for day in labels]} for a in audiences
        ]}  # fmt: skip

    context = {"campaign": campaign, "rows": rows,
               "impressions": series("impressions"), "clicks": series("clicks")}  # fmt: skip
    return render(request, "campaign.html", context)
