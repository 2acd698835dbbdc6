"""Admin API for the DMP side: taxonomies, third-party feeds, the lifetime purge and
audience exports to ad platforms."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import Field
from starlette.responses import Response

from tessera.api.responses import StrictBody, json_response
from tessera.audiences import (
    campaigns,
    exports,
    feeds,
    lifetime,
    lookalike,
    lookalike_report,
    signal_config,
    signals,
    taxonomy,
)
from tessera.dependencies import RuntimeDep, require_admin
from tessera.events import importer
from tessera.events.timestamps import utc_now
from tessera.results import Deleted, wire

router = APIRouter(prefix="/api/audiences", dependencies=[Depends(require_admin)])


@contextmanager
def _saved(upload: UploadFile, data_dir: Path) -> Iterator[Path]:
    """The uploaded file on disk for as long as it is read."""
    path = importer.save_upload(upload.file, upload.filename or "upload", data_dir)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@router.get(
    "/taxonomies", summary="Loaded taxonomies", response_model=list[taxonomy.TaxonomySummary]
)
def list_taxonomies(runtime: RuntimeDep) -> Response:
    return json_response(taxonomy.taxonomies(runtime.store))


@router.post(
    "/taxonomies",
    summary="Load (or replace) a taxonomy from an IAB TSV file",
    response_model=taxonomy.TaxonomyLoaded,
)
def load_taxonomy(
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="IAB Tech Lab taxonomy, tab-separated")],
    name: Annotated[str | None, Form(description="e.g. iab-audience (from the file name)")] = None,
) -> Response:
    chosen = name or taxonomy.default_name(Path(file.filename or "taxonomy.tsv"))
    with _saved(file, runtime.settings.data_dir) as path:
        return json_response(
            taxonomy.load(runtime.store, path, chosen, runtime.settings.rejects_dir)
        )


@router.get(
    "/taxonomies/{name}",
    summary="Browse a taxonomy: top tier, children, or search",
    response_model=list[taxonomy.TaxonomyEntry],
)
def browse_taxonomy(
    name: str, runtime: RuntimeDep, parent: str | None = None, search: str | None = None
) -> Response:
    return json_response(taxonomy.browse(runtime.store, name, parent=parent, search=search))


@router.post(
    "/feeds",
    summary="Import a data provider's feed (CSV or JSON lines)",
    response_model=feeds.FeedImported,
)
def import_feed(
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="cookie_id/advertising_id → segments")],
    provider: Annotated[str, Form()],
    taxonomy_name: Annotated[str, Form(alias="taxonomy")] = "iab-audience",
    cpm: Annotated[float | None, Form()] = None,
    lifetime_days: Annotated[int, Form(ge=1)] = 90,
    restrictions: Annotated[str | None, Form()] = None,
) -> Response:
    options = feeds.FeedOptions(provider, taxonomy_name, cpm, lifetime_days, restrictions)
    with _saved(file, runtime.settings.data_dir) as path:
        return json_response(
            feeds.import_feed(runtime.store, path, options, runtime.settings.rejects_dir, utc_now())
        )


@router.get(
    "/third-party",
    summary="Third-party segments: provider, price, lifetime, members",
    response_model=list[feeds.ThirdPartySegment],
)
def third_party_segments(runtime: RuntimeDep) -> Response:
    return json_response(feeds.segments(runtime.store, utc_now()))


class LookalikeBody(StrictBody):
    name: str = Field(examples=["travel-lookalike"])
    seed: str = Field(description="The seed segment", examples=["travel-buyers"])
    reach: int | None = Field(default=None, ge=1, description="How many profiles to keep")
    accuracy: float | None = Field(
        default=None, gt=0, le=1, description="Or: the held-out recall to reach (0-1)"
    )
    method: str = Field(default="weights", description="weights (v1) or classifier (v2)")
    population: str = Field(default="all", description="all, anonymous or known")


@router.post(
    "/lookalikes",
    status_code=201,
    summary="Build a lookalike audience from a seed",
    response_model=lookalike_report.Lookalike,
)
def create_lookalike(body: LookalikeBody, runtime: RuntimeDep) -> Response:
    """Trains on the seed (20% held out to report recall and lift at each reach), keeps
    the top profiles outside the seed, and creates a segment of the same name."""
    return json_response(
        lookalike.create(
            runtime.store,
            body.name,
            body.seed,
            now=utc_now(),
            reach=body.reach,
            accuracy=body.accuracy,
            method=body.method,
            population=body.population,
            policy=runtime.settings.consent_policy("advertising"),
        ),
        status=201,
    )


@router.get(
    "/lookalikes",
    summary="Lookalike audiences",
    response_model=list[lookalike_report.LookalikeSummary],
)
def list_lookalikes(runtime: RuntimeDep) -> Response:
    return json_response(lookalike.list_lookalikes(runtime.store))


@router.get(
    "/lookalikes/{name}",
    summary="One lookalike: weights, curve, evaluation",
    response_model=lookalike_report.Lookalike,
)
def get_lookalike(name: str, runtime: RuntimeDep) -> Response:
    return json_response(lookalike.get(runtime.store, name))


class ReachBody(StrictBody):
    reach: int = Field(ge=1, description="How many of the ranked profiles to keep")


@router.patch(
    "/lookalikes/{name}",
    summary="Change a lookalike's reach (its segment follows)",
    response_model=lookalike_report.Lookalike,
)
def change_reach(name: str, body: ReachBody, runtime: RuntimeDep) -> Response:
    return json_response(lookalike.set_reach(runtime.store, name, body.reach, utc_now()))


@router.get(
    "/lookalikes/{name}/scores",
    summary="The best-scored profiles, ranked",
    response_model=list[lookalike_report.Score],
)
def lookalike_scores(
    name: str, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 100
) -> Response:
    return json_response(lookalike.scores_of(runtime.store, name, limit))


@router.delete(
    "/lookalikes/{name}", summary="Delete a lookalike and its segment", response_model=Deleted
)
def delete_lookalike(name: str, runtime: RuntimeDep) -> Response:
    lookalike.delete(runtime.store, name)
    return json_response(Deleted(deleted=name))


class HoldoutBody(StrictBody):
    share: float = Field(gt=0, le=0.5, description="Share of the audience held out, e.g. 0.1")


@router.post(
    "/campaigns/results",
    summary="Import campaign delivery and results (CSV)",
    response_model=campaigns.CampaignImport,
)
def import_campaign_results(
    runtime: RuntimeDep, file: Annotated[UploadFile, File(description="campaign,day,...")]
) -> Response:
    with _saved(file, runtime.settings.data_dir) as path:
        rejects = runtime.settings.rejects_dir
        return json_response(campaigns.import_results(runtime.store, path, rejects, utc_now()))


@router.post(
    "/campaigns/conversions",
    summary="Import conversions with an identifier (CSV)",
    response_model=campaigns.ConversionImport,
)
def import_campaign_conversions(
    runtime: RuntimeDep, file: Annotated[UploadFile, File(description="campaign,email,...")]
) -> Response:
    with _saved(file, runtime.settings.data_dir) as path:
        return json_response(
            campaigns.import_conversions(runtime.store, path, runtime.settings.rejects_dir)
        )


@router.get(
    "/campaigns/report",
    summary="Results per campaign and audience, with lift",
    response_model=list[campaigns.CampaignResult],
)
def campaign_report(
    runtime: RuntimeDep, campaign: str | None = None, event: str = "Order Completed"
) -> Response:
    return json_response(campaigns.report(runtime.store, campaign=campaign, conversion_event=event))


@router.get(
    "/campaigns/{campaign}/daily",
    summary="One campaign per day and audience",
    response_model=list[campaigns.CampaignDay],
)
def campaign_daily(campaign: str, runtime: RuntimeDep) -> Response:
    return json_response(campaigns.daily(runtime.store, campaign))


@router.post(
    "/{segment}/holdout",
    summary="Hold a share of an audience out of its exports",
    response_model=campaigns.Holdout,
)
def set_holdout(segment: str, body: HoldoutBody, runtime: RuntimeDep) -> Response:
    return json_response(campaigns.holdout(runtime.store, segment, body.share, utc_now()))


@router.get(
    "/signals",
    summary="Signal traits and page categories",
    response_model=signal_config.SignalConfig,
)
def get_signals(runtime: RuntimeDep) -> Response:
    return json_response(signal_config.show(runtime))


@router.put(
    "/signals",
    summary="Replace the signal traits and page categories",
    response_model=signal_config.SignalsLoaded,
)
def put_signals(body: signals.SignalsDocument, runtime: RuntimeDep) -> Response:
    """Body: {"taxonomy": "iab-content", "categories": {"/travel": "653"},
    "signals": [{"name": ..., "when": {...}, "lifetime_days": 30}]}. Traits are computed
    at once."""
    return json_response(signal_config.load(runtime, body))


@router.post(
    "/purge", summary="Purge anonymous profiles past their lifetime", response_model=lifetime.Purged
)
def purge(runtime: RuntimeDep, dry_run: bool = False) -> Response:
    """Anonymous profiles (only cookie, device, ad or synced ids) not seen for their
    lifetime, with their events. Runs by itself every hour inside `tessera serve`."""
    return json_response(runtime.pipeline.purge_expired(dry_run=dry_run))


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
        runtime.store, segment, file_format, buffer, runtime.settings.consent_policy("advertising")
    )
    suffix = "jsonl" if file_format == "openrtb" else "csv"
    return Response(
        buffer.getvalue(),
        media_type=exports.MEDIA_TYPES[file_format],
        headers={
            "X-Tessera-Export": wire(summary).decode(),
            "Content-Disposition": f'attachment; filename="{segment}-{file_format}.{suffix}"',
        },
    )
