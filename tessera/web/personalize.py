"""The console's personalisation pages: offers (with the live decision for any profile,
lift, the recommendation model and the latest decisions) and the call-centre screen."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from tessera.dependencies import RuntimeDep
from tessera.errors import InvalidField, TesseraError
from tessera.personalize import decisions, offers, serving
from tessera.personalize import recommendations as recs
from tessera.personalize.strategies import STRATEGIES
from tessera.runtime import Runtime
from tessera.web import session
from tessera.web.rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])


@router.get("/offers")
def offers_page(
    request: Request,
    runtime: RuntimeDep,
    profile: str = "",
    channel: str = "web",
    strategy: str = "",
    message: str = "",
) -> Response:
    return _offers(request, runtime, profile=profile, channel=channel, strategy=strategy,
                   message=message)  # fmt: skip


@router.post("/offers")
def create_offer(
    request: Request,
    runtime: RuntimeDep,
    name: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    condition: Annotated[str, Form()] = "",
    priority: Annotated[str, Form()] = "0",
    weight: Annotated[str, Form()] = "1",
    channel: Annotated[str, Form()] = "any",
    cap_per_day: Annotated[str, Form()] = "",
    starts_at: Annotated[str, Form()] = "",
    ends_at: Annotated[str, Form()] = "",
) -> Response:
    form = {"name": name, "title": title, "condition": condition, "priority": priority,
            "weight": weight, "channel": channel, "cap_per_day": cap_per_day,
            "starts_at": starts_at, "ends_at": ends_at}  # fmt: skip
    try:
        spec = _spec(form)
        created = offers.create(runtime, spec)
    except TesseraError as error:
        return _offers(request, runtime, error=error, form=form, status=error.status)
    note = f"Created offer {created.name} ({created.description})."
    return RedirectResponse(f"/offers?{urlencode({'message': note})}", status_code=303)


@router.post("/offers/{name}/delete")
def delete_offer(runtime: RuntimeDep, name: str) -> Response:
    offers.delete(runtime, name)
    note = f"Deleted offer {name}."
    return RedirectResponse(f"/offers?{urlencode({'message': note})}", status_code=303)


@router.post("/recommendations/train")
def train(runtime: RuntimeDep) -> Response:
    trained = runtime.personalizer.retrain()
    note = (f"Trained on {trained.interactions:,} interactions of {trained.people:,} people "
            f"({trained.products:,} products) in {trained.seconds} s.")  # fmt: skip
    return RedirectResponse(f"/offers?{urlencode({'message': note})}#model", status_code=303)


@router.get("/callcentre")
def callcentre_page(request: Request, runtime: RuntimeDep, q: str = "") -> Response:
    card = None
    error: TesseraError | None = None
    if q.strip():
        try:
            card = serving.caller_card(runtime, runtime.personalizer, q)
        except TesseraError as e:
            error = e
    return render(request, "callcentre.html", {"q": q, "card": card, "error": error},
                  error.status if error else 200)  # fmt: skip


def _offers(
    request: Request,
    runtime: Runtime,
    *,
    profile: str = "",
    channel: str = "web",
    strategy: str = "",
    message: str = "",
    error: TesseraError | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    runtime.personalizer.flush()
    decision = None
    decision_error: TesseraError | None = None
    if profile.strip():
        try:
            if strategy and strategy not in STRATEGIES:
                raise InvalidField(
                    f"strategy {strategy!r} must be one of {', '.join(STRATEGIES)}",
                    field="strategy",
                    value=strategy,
                )
            decision = serving.preview(
                runtime, runtime.personalizer, profile.strip(), channel=channel or "web",
                strategy=strategy or None,  # type: ignore[arg-type]
            )  # fmt: skip
        except TesseraError as e:
            decision_error = e
    context: dict[str, Any] = {
        "offers": offers.list_all(runtime.store),
        "lift": {row.offer: row for row in decisions.lift(runtime.store)},
        "recent": decisions.recent(runtime.store, 20),
        "model": recs.status(runtime),
        "channels": offers.CHANNELS,
        "strategies": STRATEGIES,
        "default_strategy": runtime.settings.offer_strategy,
        "profile": profile,
        "channel": channel,
        "strategy": strategy,
        "decision": decision,
        "decision_error": decision_error,
        "message": message,
        "error": error,
        "form": form or {},
        "quote": quote,
    }
    return render(request, "offers.html", context, status)


def _spec(form: dict[str, str]) -> offers.OfferSpec:
    def number(field: str, kind: type[int] | type[float]) -> int | float | None:
        text = form[field].strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            raise InvalidField(f"{field.replace('_', ' ')} {text!r} must be a number",
                               field=field, value=text) from None  # fmt: skip

    def moment(field: str) -> datetime | None:
        text = form[field].strip()
        if not text:
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise InvalidField(f"{field.replace('_', ' ')} {text!r} is not a date and time",
                               field=field, value=text) from None  # fmt: skip

    given: dict[str, Any] = {
        "name": form["name"].strip(),
        "title": form["title"],
        "condition": form["condition"],
        "priority": number("priority", int) or 0,
        "weight": number("weight", float) or 1.0,
        "channel": form["channel"],
        "cap_per_day": number("cap_per_day", int),
        "starts_at": moment("starts_at"),
        "ends_at": moment("ends_at"),
    }
    try:
        return offers.OfferSpec.model_validate(given)
    except ValidationError as e:
        item = e.errors()[0]
        field = ".".join(str(p) for p in item["loc"])
        raise InvalidField(f"{field.replace('_', ' ')}: {item['msg']}", field=field) from None
