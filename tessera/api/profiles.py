"""Admin API for unify: the pipeline, profiles (360° view, search, as-of), identity
(explain, unmerge) and computed traits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tessera.api.responses import StrictBody, json_response
from tessera.audiences import feeds
from tessera.dependencies import CursorQuery, RuntimeDep, require_admin
from tessera.events import failures
from tessera.events.failures import FailedEvent
from tessera.events.timestamps import utc_now
from tessera.identity import explain as identity
from tessera.identity import matching, unmerging
from tessera.identity.lookup import lookup, member_ids
from tessera.paging import Page
from tessera.pipeline.runs import Lag, ReplayReport, RunReport
from tessera.profiles import loyalty, reader, traits, view
from tessera.profiles.computed import TraitDefinition
from tessera.results import Deleted

router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])


class Unmerge(StrictBody):
    first: str = Field(description="TYPE:VALUE", examples=["email:jane@example.com"])
    second: str = Field(description="TYPE:VALUE", examples=["anonymous_id:3f2a..."])
    reason: str | None = None


@router.get("/pipeline", response_model=Lag, summary="Pipeline position and lag")
def pipeline_state(runtime: RuntimeDep) -> Response:
    return json_response(runtime.pipeline.lag())


@router.get(
    "/pipeline/failed",
    summary="Events the pipeline set aside (its dead letters)",
    response_model=list[FailedEvent],
)
def pipeline_failed(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> Response:
    """Events that made identity or profiles fail on their own, with the error; the
    pipeline moved past them. They stay in the log."""
    return json_response(failures.listing(runtime.store, limit=limit))


@router.post(
    "/pipeline/replay-failed",
    summary="Process the set-aside events again",
    response_model=ReplayReport,
)
def pipeline_replay_failed(runtime: RuntimeDep) -> Response:
    """After a fix: forget the dead letters and rebuild from the log, so each event is
    processed in its place; those that fail again are set aside again."""
    return json_response(runtime.pipeline.replay_failed().report())


@router.post("/pipeline/process", summary="Process pending events now", response_model=RunReport)
def pipeline_process(runtime: RuntimeDep) -> Response:
    return json_response(runtime.pipeline.process().report())


@router.post(
    "/pipeline/rebuild",
    summary="Recompute identity and profiles from the log",
    response_model=RunReport,
)
def pipeline_rebuild(runtime: RuntimeDep) -> Response:
    return json_response(runtime.pipeline.rebuild().report())


@router.get(
    "/profiles",
    response_model=Page,
    summary="Search profiles by identifier fragment or trait: a page",
)
def search_profiles(
    runtime: RuntimeDep,
    identifier: str | None = None,
    trait: Annotated[str | None, Query(description="KEY=VALUE, e.g. city=Paris")] = None,
    limit: Annotated[int, Query(ge=1, le=view.SEARCH_PAGE_MAX)] = 20,
    cursor: CursorQuery = None,
) -> Response:
    found = view.search(
        runtime.store, identifier=identifier, trait=trait, limit=limit, cursor=cursor
    )
    return json_response(found)


@router.get(
    "/profiles/{reference:path}/events",
    response_model=reader.Timeline,
    summary="A page of a profile's events",
)
def profile_events(
    reference: str,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_seq: int | None = None,
) -> Response:
    profile_id = lookup(runtime.store, reference, runtime.settings.default_region)
    members = member_ids(runtime.store, profile_id)
    page = view.timeline(runtime.store, members, limit=limit, before_seq=before_seq)
    return json_response(reader.Timeline(**page))


@router.get(
    "/profiles/{reference:path}/third-party",
    summary="A profile's third-party segments",
    response_model=list[feeds.ThirdPartyMembership],
)
def profile_third_party(reference: str, runtime: RuntimeDep) -> Response:
    """Live memberships through any of the profile's identifiers (a cookie's data follows
    it into the customer profile), with provider and use restrictions."""
    profile_id = lookup(runtime.store, reference, runtime.settings.default_region)
    return json_response(
        feeds.of_profile(
            runtime.store, profile_id, utc_now(), runtime.settings.consent_policy("advertising")
        )
    )


@router.get(
    "/profiles/{reference:path}",
    response_model=reader.Profile,
    summary="The 360° view: TYPE:VALUE or a profile id",
)
async def get_profile(
    reference: str,
    runtime: RuntimeDep,
    events: Annotated[int, Query(ge=0, le=500, description="Events to include (0: none)")] = 20,
    before_seq: int | None = None,
    as_of: Annotated[str | None, Query(description="A date: the profile as it stood then")] = None,
) -> Response:
    """Served from the pipeline's memory when it can be (no SQL, no thread hop); the
    event page and anything the memory cannot answer go to the store on a thread."""
    if not as_of and events == 0:
        core = reader.from_memory(runtime, reference)
        if core is not None:
            return json_response(core)
    found = await run_in_threadpool(reader.show, runtime, reference, events, before_seq, as_of)
    return json_response(found)


@router.get(
    "/identity/explain",
    summary="Why two identifiers are one person",
    response_model=identity.Explanation,
)
def explain_link(first: str, second: str, runtime: RuntimeDep) -> Response:
    return json_response(identity.why(runtime, first, second))


@router.post(
    "/identity/unmerge",
    summary="Separate two identifiers and rebuild",
    response_model=unmerging.Unmerged,
)
def unmerge(body: Unmerge, runtime: RuntimeDep) -> Response:
    return json_response(unmerging.unmerge(runtime, body.first, body.second, body.reason))


class MatchRequest(StrictBody):
    incremental: bool = Field(
        default=False,
        description="Compare only the profiles created since the last run (with everyone), "
        "with the model that run trained",
    )


class MatchDecision(StrictBody):
    accept: bool = Field(description="true links the two profiles; false never offers them again")
    reason: str | None = Field(default=None, max_length=500)


@router.post(
    "/identity/match",
    summary="Find probabilistic matches: link the sure ones, queue the doubtful for review",
    response_model=matching.MatchRun,
)
def identity_match(runtime: RuntimeDep, body: MatchRequest | None = None) -> Response:
    incremental = body.incremental if body is not None else False
    return json_response(matching.match(runtime, incremental=incremental))


@router.get(
    "/identity/matches",
    summary="Probabilistic matches (the review queue with status=review)",
    response_model=list[matching.Match],
)
def identity_matches(
    runtime: RuntimeDep,
    status: Annotated[str | None, Query(description="linked, review, accepted or rejected")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    return json_response(matching.list_matches(runtime, status, limit))


@router.get(
    "/identity/matches/{match_id}",
    summary="One probabilistic match with its evidence",
    response_model=matching.Match,
)
def identity_match_show(match_id: str, runtime: RuntimeDep) -> Response:
    return json_response(matching.show(runtime, match_id))


@router.post(
    "/identity/matches/{match_id}/decision",
    summary="Accept (link and rebuild) or reject a match waiting for review",
    response_model=matching.Match,
)
def identity_match_decide(match_id: str, body: MatchDecision, runtime: RuntimeDep) -> Response:
    return json_response(matching.decide(runtime, match_id, body.accept, body.reason))


@router.get("/identity/blocks", summary="Unmerges in force", response_model=list[unmerging.Block])
def list_blocks(runtime: RuntimeDep) -> Response:
    return json_response(unmerging.blocks(runtime.store))


@router.get(
    "/computed-traits", summary="Computed trait definitions", response_model=list[traits.Trait]
)
def list_traits(runtime: RuntimeDep) -> Response:
    return json_response(traits.listing(runtime))


@router.post(
    "/computed-traits",
    status_code=201,
    summary="Define a computed trait",
    response_model=traits.Trait,
)
def create_trait(body: TraitDefinition, runtime: RuntimeDep) -> Response:
    return json_response(traits.define(runtime, body), status=201)


@router.delete(
    "/computed-traits/{name}",
    summary="Remove a computed trait defined here",
    response_model=Deleted,
)
def delete_trait(name: str, runtime: RuntimeDep) -> Response:
    return json_response(traits.delete(runtime, name))


@router.get("/loyalty", summary="The loyalty rules in force", response_model=loyalty.LoyaltyLoaded)
def show_loyalty(runtime: RuntimeDep) -> Response:
    return json_response(loyalty.shown(runtime.store))


@router.put(
    "/loyalty",
    summary="Load loyalty rules: points per euro per category, tier thresholds",
    response_model=loyalty.LoyaltyLoaded,
)
def load_loyalty(body: loyalty.LoyaltyRules, runtime: RuntimeDep) -> Response:
    return json_response(loyalty.define(runtime, body.model_dump()))
