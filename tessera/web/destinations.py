"""The console's destinations page: each destination with its delivery log as a chart,
its last errors, its dead letters and a button to send them again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from tessera.activation import dead_letters, deliveries, destinations
from tessera.dependencies import RuntimeDep
from tessera.web import session
from tessera.web.rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])
_SHOWN_DEAD_LETTERS = 20


@router.get("/destinations")
def destinations_page(request: Request, runtime: RuntimeDep) -> Response:
    shown = []
    for destination in destinations.list_all(runtime.store):
        report = deliveries.report(runtime.store, destination.name)
        shown.append({
            "destination": destination,
            "report": report,
            "chart": _chart(report.minutes),
            "dead_letters": dead_letters.list_for(
                runtime.store, destination.name, _SHOWN_DEAD_LETTERS),
        })  # fmt: skip
    return render(request, "destinations.html", {"destinations": shown})


@router.post("/destinations/{name}/replay")
def replay_dead_letters(name: str, runtime: RuntimeDep) -> Response:
    dead_letters.replay(runtime.store, name, dead_letters=True)
    return RedirectResponse(f"/destinations#{name}", status_code=303)


def _chart(minutes: list[deliveries.DeliveryMinute]) -> dict[str, Any]:
    """Per minute, stacked: what was delivered, retried, failed, suppressed, dead-lettered."""
    return {
        "labels": [(m.minute or "")[11:16] for m in minutes],
        "datasets": [
            {"label": label.replace("_", "-"), "data": [getattr(m, label) for m in minutes]}
            for label in deliveries.COUNTS
        ],
    }
