"""How the CLI reaches Tessera: the running server's admin API, or the store itself.

While `tessera serve` runs it owns the DuckDB file, so CLI commands go through its
admin API; otherwise they open the store directly. Both backends call the same
feature functions in the end (the remote one through the API that calls them).
"""

from __future__ import annotations

import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
import orjson
from pydantic import TypeAdapter

from tessera.activation import dead_letters, deliveries, destinations
from tessera.audiences import campaigns, exports, feeds, lifetime, signal_config, taxonomy
from tessera.audiences import lookalike_report as looks
from tessera.catalog import products
from tessera.catalog.rows import load_mapping
from tessera.errors import ImportFailed, NotFound, StoreUnavailable, TesseraError
from tessera.events import failures, importer, reading
from tessera.events.failures import FailedEvent
from tessera.events.importer import Imported
from tessera.events.sources import SourceKey, SourceView
from tessera.events.timestamps import utc_now
from tessera.governance import access, erasure, retention
from tessera.governance import requests as dsr
from tessera.identity import explain as identity
from tessera.identity import matching, unmerging
from tessera.operations import backup as backups
from tessera.paging import Page
from tessera.personalize import callcentre, decisions, exposure, keys, offers, serving
from tessera.personalize import recommendations as recs
from tessera.personalize.strategies import Strategy
from tessera.pipeline.runs import ReplayReport, RunReport, Stats
from tessera.plans import service as plans
from tessera.predict import service as predictions
from tessera.privacy import audit, tokens, users
from tessera.privacy.keys import load_or_create_admin_token
from tessera.profiles import consent_changes, loyalty, reader, traits, view
from tessera.results import Deleted
from tessera.runtime import Runtime
from tessera.segments import actions as segments
from tessera.settings import Settings

T = TypeVar("T")
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class LookalikeRequest:
    """What `tessera audiences lookalike create` asks for (the API's LookalikeBody)."""

    name: str
    seed: str
    reach: int | None = None
    accuracy: float | None = None
    method: str = "weights"
    population: str = "all"


@dataclass(frozen=True)
class PolicyRequest:
    """What `tessera privacy retention set` asks for (the API's PolicyBody)."""

    scope: str
    days: int
    source: str | None = None
    event: str | None = None
    identifier_type: str | None = None


@dataclass(frozen=True)
class DestinationRequest:
    """What `tessera destinations create` asks for (the API's DestinationBody)."""

    name: str
    kind: str
    purpose: str
    options: dict[str, Any]


class Backend(Protocol):
    def stats(self) -> Stats: ...
    def list_sources(self) -> list[SourceView]: ...
    def create_source(self, name: str, channel: str) -> SourceKey: ...
    def rotate_key(self, name: str) -> SourceKey: ...
    def set_enabled(self, name: str, enabled: bool) -> SourceView: ...
    def tail(self, limit: int, source: str | None, cursor: str | None = None) -> Page: ...
    def rejected(self, limit: int, source: str | None, cursor: str | None = None) -> Page: ...
    def import_file(
        self, path: Path, source: str, mapping_text: str, progress: Progress | None
    ) -> Imported: ...
    def process(self) -> RunReport: ...
    def rebuild(self) -> RunReport: ...
    def failed(self, limit: int) -> list[FailedEvent]: ...
    def replay_failed(self) -> ReplayReport: ...
    def profile(self, reference: str, limit: int, as_of: str | None) -> reader.Profile: ...
    def search(
        self, identifier: str | None, trait: str | None, limit: int, cursor: str | None = None
    ) -> Page: ...
    def explain(self, first: str, second: str) -> identity.Explanation: ...
    def unmerge(self, first: str, second: str, reason: str | None) -> unmerging.Unmerged: ...
    def identity_match(self, incremental: bool) -> matching.MatchRun: ...
    def identity_matches(self, status: str | None, limit: int) -> list[matching.Match]: ...
    def identity_decide(
        self, match_id: str, accept: bool, reason: str | None
    ) -> matching.Match: ...
    def computed_traits(self) -> list[traits.Trait]: ...
    def define_trait(self, definition: dict[str, Any]) -> traits.Trait: ...
    def delete_trait(self, name: str) -> Deleted: ...
    def create_segment(self, name: str, query: str, exposed: bool = False) -> segments.Segment: ...
    def update_segment(
        self, name: str, query: str, exposed: bool | None = None
    ) -> segments.Segment: ...
    def expose_segment(self, name: str, exposed: bool) -> segments.Segment: ...
    def preview_segment(self, query: str) -> segments.Preview: ...
    def list_segments(self) -> list[segments.SegmentSummary]: ...
    def show_segment(self, name: str) -> segments.Segment: ...
    def delete_segment(self, name: str) -> Deleted: ...
    def segment_members(self, name: str, limit: int, cursor: str | None = None) -> Page: ...
    def segment_history(self, name: str) -> segments.History: ...
    def segment_why(self, name: str, reference: str) -> segments.Why: ...
    def segment_overlap(self) -> list[segments.Overlap]: ...
    def export_audience(self, segment: str, file_format: str, out: Path) -> exports.Exported: ...
    def purge_anonymous(self, dry_run: bool) -> lifetime.Purged: ...
    def privacy_access(self, identifier: str) -> access.AccessReport: ...
    def privacy_erase(self, identifier: str) -> dsr.PrivacyRequest: ...
    def privacy_suppress(self, identifier: str) -> dsr.PrivacyRequest: ...
    def privacy_requests(self, limit: int) -> list[dsr.PrivacyRequest]: ...
    def privacy_request(self, request_id: str) -> dsr.PrivacyRequest: ...
    def retention_policies(self) -> list[retention.Policy]: ...
    def set_retention_policy(self, name: str, request: PolicyRequest) -> retention.Policy: ...
    def delete_retention_policy(self, name: str) -> Deleted: ...
    def run_retention(self, dry_run: bool) -> retention.RetentionRun: ...
    def retention_runs(self, limit: int) -> list[retention.RetentionRun]: ...
    def list_plans(self) -> list[plans.Plan]: ...
    def show_plan(self, source: str) -> plans.Plan: ...
    def set_plan(self, source: str, mode: str, plan: dict[str, Any]) -> plans.Plan: ...
    def delete_plan(self, source: str) -> Deleted: ...
    def plan_violations(self, source: str, limit: int) -> list[plans.PlanViolation]: ...
    def infer_plan(self, source: str, days: int) -> plans.Plan: ...
    def load_taxonomy(self, path: Path, name: str | None) -> taxonomy.TaxonomyLoaded: ...
    def list_taxonomies(self) -> list[taxonomy.TaxonomySummary]: ...
    def browse_taxonomy(
        self, name: str, parent: str | None, search: str | None
    ) -> list[taxonomy.TaxonomyEntry]: ...
    def import_feed(self, path: Path, options: feeds.FeedOptions) -> feeds.FeedImported: ...
    def third_party(self) -> list[feeds.ThirdPartySegment]: ...
    def create_lookalike(self, request: LookalikeRequest) -> looks.Lookalike: ...
    def show_lookalike(self, name: str) -> looks.Lookalike: ...
    def list_lookalikes(self) -> list[looks.LookalikeSummary]: ...
    def set_lookalike_reach(self, name: str, reach: int) -> looks.Lookalike: ...
    def lookalike_scores(self, name: str, limit: int) -> list[looks.Score]: ...
    def holdout(self, segment: str, share: float) -> campaigns.Holdout: ...
    def import_campaign_results(self, path: Path) -> campaigns.CampaignImport: ...
    def import_campaign_conversions(self, path: Path) -> campaigns.ConversionImport: ...
    def campaign_report(
        self, campaign: str | None, event: str
    ) -> list[campaigns.CampaignResult]: ...
    def load_signals(self, document: object) -> signal_config.SignalsLoaded: ...
    def show_signals(self) -> signal_config.SignalConfig: ...
    def load_loyalty(self, text: str) -> loyalty.LoyaltyLoaded: ...
    def show_loyalty(self) -> loyalty.LoyaltyLoaded: ...
    def import_catalog(self, path: Path, mapping_text: str | None) -> products.CatalogImported: ...
    def list_products(
        self,
        search: str | None,
        category: str | None,
        brand: str | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page: ...
    def show_product(self, product_id: str) -> products.CatalogProduct: ...
    def set_product_retired(self, product_id: str, retired: bool) -> products.CatalogProduct: ...
    def list_destinations(self) -> list[destinations.Destination]: ...
    def create_destination(self, request: DestinationRequest) -> destinations.Created: ...
    def show_destination(self, name: str) -> destinations.Destination: ...
    def set_destination_enabled(self, name: str, enabled: bool) -> destinations.Destination: ...
    def delete_destination(self, name: str) -> destinations.DestinationDeleted: ...
    def rotate_destination_secret(self, name: str) -> destinations.Created: ...
    def show_predictions(self) -> predictions.Predictions: ...
    def fit_predictions(self) -> predictions.Predictions: ...
    def score_predictions(self) -> predictions.Predictions: ...
    def profile_predictions(self, profile_id: str) -> predictions.PersonPredictions: ...
    def destination_deliveries(self, name: str, minutes: int) -> deliveries.Report: ...
    def destination_dead_letters(self, name: str, limit: int) -> list[dead_letters.DeadLetter]: ...
    def replay_destination(
        self, name: str, dead_letters_too: bool, since: datetime | None
    ) -> dead_letters.Replayed: ...
    def backup(self, folder: Path) -> backups.Backup: ...
    def list_users(self) -> list[users.User]: ...
    def create_user(self, name: str, role: str, password: str) -> users.User: ...
    def set_user_role(self, name: str, role: str) -> users.User: ...
    def set_user_enabled(self, name: str, enabled: bool) -> users.User: ...
    def list_tokens(self, user: str | None) -> list[tokens.Token]: ...
    def create_token(
        self, user: str, scopes: list[str], expires: str | None, description: str | None
    ) -> tokens.CreatedToken: ...
    def revoke_token(self, token_id: str) -> tokens.Token: ...
    def audit_page(self, filters: dict[str, str], limit: int, cursor: str | None) -> Page: ...
    def audit_verify(self) -> audit.Verified: ...
    def audit_export(self, out: Path) -> audit.Exported: ...
    def consent_state(self, reference: str) -> consent_changes.ConsentState: ...
    def change_consent(
        self, reference: str, purposes: dict[str, bool], reason: str
    ) -> consent_changes.ConsentChanged: ...
    def close(self) -> None: ...

    # -- personalisation (issue 14) ---------------------------------------------------------
    def train_recommendations(self) -> recs.Trained: ...
    def recommendations_status(self) -> recs.ModelStatus: ...
    def recommend(self, reference: str, n: int) -> recs.Recommendations: ...
    def list_offers(self) -> list[offers.Offer]: ...
    def create_offer(self, spec: offers.OfferSpec) -> offers.Offer: ...
    def show_offer(self, name: str) -> offers.Offer: ...
    def delete_offer(self, name: str) -> Deleted: ...
    def preview_decision(
        self, reference: str, channel: str, strategy: Strategy | None
    ) -> decisions.Decision: ...
    def recent_decisions(self, limit: int) -> list[decisions.RecordedDecision]: ...
    def offer_lift(self, offer: str | None, event: str) -> list[decisions.OfferLift]: ...
    def list_publishable_keys(self) -> list[keys.PublishableKey]: ...
    def create_publishable_key(self, source: str) -> keys.PublishableKeyCreated: ...
    def revoke_publishable_key(self, key_id: str) -> keys.PublishableKey: ...
    def caller(self, text: str) -> callcentre.CallerCard: ...
    def exposed_traits(self) -> exposure.ExposedTraits: ...
    def expose_trait(self, name: str, exposed: bool) -> exposure.ExposedTraits: ...


#: The actor the audit log names for what the CLI does on the store itself (no server
#: runs: whoever can open the data directory owns it).
CLI_ACTOR = "cli"


class LocalBackend:
    """Opens the store in this process (no server running)."""

    def __init__(self, settings: Settings) -> None:
        self.runtime = Runtime.open(settings)

    def stats(self) -> Stats:
        return Stats(**reading.stats(self.runtime), **self.runtime.pipeline.lag().model_dump())

    def list_sources(self) -> list[SourceView]:
        return [s.view() for s in self.runtime.sources.list()]

    def create_source(self, name: str, channel: str) -> SourceKey:
        return self.runtime.sources.create(name, channel).view()

    def rotate_key(self, name: str) -> SourceKey:
        return self.runtime.sources.rotate_key(name).view()

    def set_enabled(self, name: str, enabled: bool) -> SourceView:
        return self.runtime.sources.set_enabled(name, enabled).view()

    def tail(self, limit: int, source: str | None, cursor: str | None = None) -> Page:
        source_id = self.runtime.sources.get(source).id if source else None
        return reading.tail(self.runtime, limit=limit, source_id=source_id, cursor=cursor)

    def rejected(self, limit: int, source: str | None, cursor: str | None = None) -> Page:
        source_id = self.runtime.sources.get(source).id if source else None
        return reading.rejected(self.runtime, limit=limit, source_id=source_id, cursor=cursor)

    def import_file(
        self, path: Path, source: str, mapping_text: str, progress: Progress | None
    ) -> Imported:
        summary = importer.import_file(
            store=self.runtime.store,
            writer=self.runtime.writer,
            source=self.runtime.sources.get(source),
            path=path,
            mapping=importer.load_mapping(mapping_text),
            rejects_dir=self.runtime.settings.rejects_dir,
            progress=progress,
        )
        return summary.result()

    def process(self) -> RunReport:
        return self.runtime.pipeline.process().report()

    def rebuild(self) -> RunReport:
        return self.runtime.pipeline.rebuild().report()

    def failed(self, limit: int) -> list[FailedEvent]:
        return failures.listing(self.runtime.store, limit=limit)

    def replay_failed(self) -> ReplayReport:
        return self.runtime.pipeline.replay_failed().report()

    def profile(self, reference: str, limit: int, as_of: str | None) -> reader.Profile:
        return reader.show(self.runtime, reference, limit, as_of=as_of)

    def search(
        self, identifier: str | None, trait: str | None, limit: int, cursor: str | None = None
    ) -> Page:
        return view.search(
            self.runtime.store, identifier=identifier, trait=trait, limit=limit, cursor=cursor
        )

    def explain(self, first: str, second: str) -> identity.Explanation:
        return identity.why(self.runtime, first, second)

    def unmerge(self, first: str, second: str, reason: str | None) -> unmerging.Unmerged:
        return unmerging.unmerge(self.runtime, first, second, reason)

    def identity_match(self, incremental: bool) -> matching.MatchRun:
        return matching.match(self.runtime, incremental=incremental)

    def identity_matches(self, status: str | None, limit: int) -> list[matching.Match]:
        return matching.list_matches(self.runtime, status, limit)

    def identity_decide(self, match_id: str, accept: bool, reason: str | None) -> matching.Match:
        return matching.decide(self.runtime, match_id, accept, reason)

    def computed_traits(self) -> list[traits.Trait]:
        return traits.listing(self.runtime)

    def define_trait(self, definition: dict[str, Any]) -> traits.Trait:
        return traits.define(self.runtime, definition)

    def delete_trait(self, name: str) -> Deleted:
        return traits.delete(self.runtime, name)

    def create_segment(self, name: str, query: str, exposed: bool = False) -> segments.Segment:
        created = segments.create(self.runtime, name, query, exposed)
        if exposed:
            self._audited("segments.expose", name, {"exposed": True})
        return created

    def update_segment(
        self, name: str, query: str, exposed: bool | None = None
    ) -> segments.Segment:
        updated = segments.update(self.runtime, name, query, exposed)
        if exposed is not None:
            self._audited("segments.expose", name, {"exposed": exposed})
        return updated

    def expose_segment(self, name: str, exposed: bool) -> segments.Segment:
        changed = segments.expose(self.runtime, name, exposed)
        self._audited("segments.expose", name, {"exposed": exposed})
        return changed

    def preview_segment(self, query: str) -> segments.Preview:
        return segments.preview(self.runtime, query)

    def list_segments(self) -> list[segments.SegmentSummary]:
        return segments.listing(self.runtime)

    def show_segment(self, name: str) -> segments.Segment:
        return segments.show(self.runtime, name)

    def delete_segment(self, name: str) -> Deleted:
        return segments.delete(self.runtime, name)

    def segment_members(self, name: str, limit: int, cursor: str | None = None) -> Page:
        return segments.members(self.runtime, name, limit, cursor)

    def segment_history(self, name: str) -> segments.History:
        return segments.history(self.runtime, name)

    def segment_why(self, name: str, reference: str) -> segments.Why:
        return segments.why(self.runtime, name, reference)

    def segment_overlap(self) -> list[segments.Overlap]:
        return segments.overlap(self.runtime)

    def export_audience(self, segment: str, file_format: str, out: Path) -> exports.Exported:
        policy = self.runtime.settings.consent_policy("advertising")
        with out.open("w", newline="", encoding="utf-8") as handle:
            return exports.export(self.runtime.store, segment, file_format, handle, policy)

    def purge_anonymous(self, dry_run: bool) -> lifetime.Purged:
        return self.runtime.pipeline.purge_expired(dry_run=dry_run)

    # -- data-subject requests (issue 15) ------------------------------------------------

    def privacy_access(self, identifier: str) -> access.AccessReport:
        return access.access(self.runtime, identifier)

    def privacy_erase(self, identifier: str) -> dsr.PrivacyRequest:
        return erasure.erase(self.runtime, identifier)

    def privacy_suppress(self, identifier: str) -> dsr.PrivacyRequest:
        return access.suppress(self.runtime, identifier)

    def privacy_requests(self, limit: int) -> list[dsr.PrivacyRequest]:
        return dsr.list_all(self.runtime.store, limit)

    def privacy_request(self, request_id: str) -> dsr.PrivacyRequest:
        return dsr.get(self.runtime.store, request_id)

    def retention_policies(self) -> list[retention.Policy]:
        return retention.policies(self.runtime.store)

    def set_retention_policy(self, name: str, request: PolicyRequest) -> retention.Policy:
        return retention.set_policy(
            self.runtime.store, name, request.scope, request.days, source=request.source,
            event=request.event, identifier_type=request.identifier_type,
        )  # fmt: skip

    def delete_retention_policy(self, name: str) -> Deleted:
        return retention.delete_policy(self.runtime.store, name)

    def run_retention(self, dry_run: bool) -> retention.RetentionRun:
        return retention.run(self.runtime, dry_run=dry_run)

    def retention_runs(self, limit: int) -> list[retention.RetentionRun]:
        return retention.runs(self.runtime.store, limit)

    # -- tracking plans (issue 15) -------------------------------------------------------

    def list_plans(self) -> list[plans.Plan]:
        return plans.list_plans(self.runtime.store)

    def show_plan(self, source: str) -> plans.Plan:
        return plans.get_plan(self.runtime.store, source)

    def set_plan(self, source: str, mode: str, plan: dict[str, Any]) -> plans.Plan:
        return plans.set_plan(self.runtime.store, source, mode, plan)

    def delete_plan(self, source: str) -> Deleted:
        return plans.delete_plan(self.runtime.store, source)

    def plan_violations(self, source: str, limit: int) -> list[plans.PlanViolation]:
        return plans.violations(self.runtime.store, source, limit)

    def infer_plan(self, source: str, days: int) -> plans.Plan:
        return plans.infer(self.runtime.store, source, days)

    def load_taxonomy(self, path: Path, name: str | None) -> taxonomy.TaxonomyLoaded:
        name = name or taxonomy.default_name(path)
        return taxonomy.load(self.runtime.store, path, name, self.runtime.settings.rejects_dir)

    def list_taxonomies(self) -> list[taxonomy.TaxonomySummary]:
        return taxonomy.taxonomies(self.runtime.store)

    def browse_taxonomy(
        self, name: str, parent: str | None, search: str | None
    ) -> list[taxonomy.TaxonomyEntry]:
        return taxonomy.browse(self.runtime.store, name, parent=parent, search=search)

    def import_feed(self, path: Path, options: feeds.FeedOptions) -> feeds.FeedImported:
        rejects = self.runtime.settings.rejects_dir
        return feeds.import_feed(self.runtime.store, path, options, rejects, utc_now())

    def third_party(self) -> list[feeds.ThirdPartySegment]:
        return feeds.segments(self.runtime.store, utc_now())

    def create_lookalike(self, request: LookalikeRequest) -> looks.Lookalike:
        # scipy (lookalikes) is imported only by the commands that need it.
        from tessera.audiences import lookalike

        return lookalike.create(
            self.runtime.store, request.name, request.seed, now=utc_now(), reach=request.reach,
            accuracy=request.accuracy, method=request.method, population=request.population,
            policy=self.runtime.settings.consent_policy("advertising"),
        )  # fmt: skip

    def show_lookalike(self, name: str) -> looks.Lookalike:
        from tessera.audiences import lookalike

        return lookalike.get(self.runtime.store, name)

    def list_lookalikes(self) -> list[looks.LookalikeSummary]:
        from tessera.audiences import lookalike

        return lookalike.list_lookalikes(self.runtime.store)

    def set_lookalike_reach(self, name: str, reach: int) -> looks.Lookalike:
        from tessera.audiences import lookalike

        return lookalike.set_reach(self.runtime.store, name, reach, utc_now())

    def lookalike_scores(self, name: str, limit: int) -> list[looks.Score]:
        from tessera.audiences import lookalike

        return lookalike.scores_of(self.runtime.store, name, limit)

    def holdout(self, segment: str, share: float) -> campaigns.Holdout:
        return campaigns.holdout(self.runtime.store, segment, share, utc_now())

    def import_campaign_results(self, path: Path) -> campaigns.CampaignImport:
        rejects = self.runtime.settings.rejects_dir
        return campaigns.import_results(self.runtime.store, path, rejects, utc_now())

    def import_campaign_conversions(self, path: Path) -> campaigns.ConversionImport:
        rejects = self.runtime.settings.rejects_dir
        return campaigns.import_conversions(self.runtime.store, path, rejects)

    def campaign_report(self, campaign: str | None, event: str) -> list[campaigns.CampaignResult]:
        return campaigns.report(self.runtime.store, campaign=campaign, conversion_event=event)

    def load_signals(self, document: object) -> signal_config.SignalsLoaded:
        return signal_config.load(self.runtime, document)

    def show_signals(self) -> signal_config.SignalConfig:
        return signal_config.show(self.runtime)

    def backup(self, folder: Path) -> backups.Backup:
        return backups.to_folder(self.runtime, folder)

    def close(self) -> None:
        self.runtime.close()

    def load_loyalty(self, text: str) -> loyalty.LoyaltyLoaded:
        return loyalty.define(self.runtime, text)

    def show_loyalty(self) -> loyalty.LoyaltyLoaded:
        return loyalty.shown(self.runtime.store)

    # -- the product catalogue (issue 14) -------------------------------------------------

    def import_catalog(self, path: Path, mapping_text: str | None) -> products.CatalogImported:
        return products.import_file(
            self.runtime.store, path, load_mapping(mapping_text), self.runtime.settings.rejects_dir
        )

    def list_products(
        self,
        search: str | None,
        category: str | None,
        brand: str | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page:
        return products.products_page(
            self.runtime.store,
            search=search,
            category=category,
            brand=brand,
            limit=limit,
            cursor=cursor,
        )

    def show_product(self, product_id: str) -> products.CatalogProduct:
        return products.show(self.runtime.store, product_id)

    def set_product_retired(self, product_id: str, retired: bool) -> products.CatalogProduct:
        if retired:
            return products.retire(self.runtime.store, product_id)
        return products.restore(self.runtime.store, product_id)

    # -- destinations (issue 13) ----------------------------------------------------------

    def list_destinations(self) -> list[destinations.Destination]:
        return destinations.list_all(self.runtime.store)

    def create_destination(self, request: DestinationRequest) -> destinations.Created:
        return destinations.create(
            self.runtime.store, request.name, request.kind, request.purpose, request.options
        )

    def show_destination(self, name: str) -> destinations.Destination:
        return destinations.get(self.runtime.store, name)

    def set_destination_enabled(self, name: str, enabled: bool) -> destinations.Destination:
        return destinations.set_enabled(self.runtime.store, name, enabled)

    def delete_destination(self, name: str) -> destinations.DestinationDeleted:
        return destinations.delete(self.runtime.store, name)

    def rotate_destination_secret(self, name: str) -> destinations.Created:
        return destinations.rotate_secret(self.runtime.store, name)

    def show_predictions(self) -> predictions.Predictions:
        return predictions.show(self.runtime)

    def fit_predictions(self) -> predictions.Predictions:
        return predictions.fit(self.runtime)

    def score_predictions(self) -> predictions.Predictions:
        return predictions.score(self.runtime)

    def profile_predictions(self, profile_id: str) -> predictions.PersonPredictions:
        return predictions.person(self.runtime, profile_id)

    def destination_deliveries(self, name: str, minutes: int) -> deliveries.Report:
        return deliveries.report(self.runtime.store, name, minutes)

    def destination_dead_letters(self, name: str, limit: int) -> list[dead_letters.DeadLetter]:
        return dead_letters.list_for(self.runtime.store, name, limit)

    def replay_destination(
        self, name: str, dead_letters_too: bool, since: datetime | None
    ) -> dead_letters.Replayed:
        return dead_letters.replay(
            self.runtime.store, name, dead_letters=dead_letters_too, since=since
        )

    # -- personalisation (issue 14) ---------------------------------------------------------

    def train_recommendations(self) -> recs.Trained:
        return self.runtime.personalizer.retrain()

    def recommendations_status(self) -> recs.ModelStatus:
        return recs.status(self.runtime)

    def recommend(self, reference: str, n: int) -> recs.Recommendations:
        return recs.recommend(self.runtime, reference, n)

    def list_offers(self) -> list[offers.Offer]:
        return offers.list_all(self.runtime.store)

    def create_offer(self, spec: offers.OfferSpec) -> offers.Offer:
        return offers.create(self.runtime, spec)

    def show_offer(self, name: str) -> offers.Offer:
        return offers.get(self.runtime.store, name)

    def delete_offer(self, name: str) -> Deleted:
        return offers.delete(self.runtime, name)

    def preview_decision(
        self, reference: str, channel: str, strategy: Strategy | None
    ) -> decisions.Decision:
        return serving.preview(
            self.runtime, self.runtime.personalizer, reference, channel=channel, strategy=strategy
        )

    def recent_decisions(self, limit: int) -> list[decisions.RecordedDecision]:
        return decisions.recent(self.runtime.store, limit)

    def offer_lift(self, offer: str | None, event: str) -> list[decisions.OfferLift]:
        return decisions.lift(self.runtime.store, offer, event)

    def list_publishable_keys(self) -> list[keys.PublishableKey]:
        return keys.list_all(self.runtime.store)

    def create_publishable_key(self, source: str) -> keys.PublishableKeyCreated:
        return keys.create(self.runtime, self.runtime.sources, source)

    def revoke_publishable_key(self, key_id: str) -> keys.PublishableKey:
        return keys.revoke(self.runtime, key_id)

    def caller(self, text: str) -> callcentre.CallerCard:
        return serving.caller_card(self.runtime, self.runtime.personalizer, text)

    def exposed_traits(self) -> exposure.ExposedTraits:
        return exposure.listing(self.runtime)

    def expose_trait(self, name: str, exposed: bool) -> exposure.ExposedTraits:
        changed = exposure.expose_trait(self.runtime, name, exposed)
        self._audited("personalize.expose-trait", name, {"exposed": exposed})
        return changed

    def _audited(
        self, action: str, target: str | None, detail: dict[str, Any] | None = None
    ) -> None:
        audit.record(self.runtime.store, CLI_ACTOR, action, target, detail, role="admin")

    def list_users(self) -> list[users.User]:
        return users.listing(self.runtime.store)

    def create_user(self, name: str, role: str, password: str) -> users.User:
        created = users.create(self.runtime.store, name, role, password)
        self._audited("users.create", created.name, {"role": role})
        return created

    def set_user_role(self, name: str, role: str) -> users.User:
        changed = users.set_role(self.runtime.store, name, role)
        self._audited("users.set-role", changed.name, {"role": role})
        return changed

    def set_user_enabled(self, name: str, enabled: bool) -> users.User:
        changed = users.set_enabled(self.runtime.store, name, enabled)
        self._audited("users.enable" if enabled else "users.disable", changed.name)
        return changed

    def list_tokens(self, user: str | None) -> list[tokens.Token]:
        return tokens.listing(self.runtime.store, user)

    def create_token(
        self, user: str, scopes: list[str], expires: str | None, description: str | None
    ) -> tokens.CreatedToken:
        created = tokens.create(self.runtime.store, user, scopes, expires, description)
        self._audited("tokens.create", created.details.id, {"user": user, "scopes": scopes})
        return created

    def revoke_token(self, token_id: str) -> tokens.Token:
        revoked = tokens.revoke(self.runtime.store, token_id)
        self._audited("tokens.revoke", token_id)
        return revoked

    def audit_page(self, filters: dict[str, str], limit: int, cursor: str | None) -> Page:
        return audit.listing(
            self.runtime.store, actor=filters.get("actor"), action=filters.get("action"),
            target=filters.get("target"), since=audit.parse_time(filters.get("since"), "since"),
            until=audit.parse_time(filters.get("until"), "until"), limit=limit, cursor=cursor,
        )  # fmt: skip

    def audit_verify(self) -> audit.Verified:
        return audit.verify(self.runtime.store)

    def audit_export(self, out: Path) -> audit.Exported:
        rows = 0
        with out.open("wb") as handle:
            for line in audit.export_lines(self.runtime.store):
                handle.write(line)
                rows += 1
        return audit.Exported(rows=rows, path=str(out))

    def consent_state(self, reference: str) -> consent_changes.ConsentState:
        return consent_changes.state(self.runtime.store, self.runtime.settings, reference)

    def change_consent(
        self, reference: str, purposes: dict[str, bool], reason: str
    ) -> consent_changes.ConsentChanged:
        changed = consent_changes.change(self.runtime, reference, purposes, CLI_ACTOR, reason)
        self.runtime.pipeline.process()
        self._audited("consent.change", changed.reference, {"purposes": purposes})
        return changed


class RemoteBackend:
    """Talks to a running server's admin API with the admin token."""

    def __init__(self, url: str, token: str, transport: httpx.BaseTransport | None = None) -> None:
        """`transport` replaces the network, e.g. `httpx.MockTransport` in a test."""
        self.url = url
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
            transport=transport,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise StoreUnavailable(f"cannot reach the server at {self.url}: {e}") from e
        if response.status_code >= 400:
            raise _remote_error(response)
        return response.json()

    def stats(self) -> Stats:
        return self._as(Stats, "GET", "/api/stats")

    def list_sources(self) -> list[SourceView]:
        return self._as(list[SourceView], "GET", "/api/sources")

    def create_source(self, name: str, channel: str) -> SourceKey:
        return self._as(SourceKey, "POST", "/api/sources", json={"name": name, "channel": channel})

    def rotate_key(self, name: str) -> SourceKey:
        return self._as(SourceKey, "POST", f"/api/sources/{name}/rotate-key")

    def set_enabled(self, name: str, enabled: bool) -> SourceView:
        action = "enable" if enabled else "disable"
        return self._as(SourceView, "POST", f"/api/sources/{name}/{action}")

    def tail(self, limit: int, source: str | None, cursor: str | None = None) -> Page:
        return self._as(Page, "GET", "/api/events", params=_listing(limit, cursor, source))

    def rejected(self, limit: int, source: str | None, cursor: str | None = None) -> Page:
        params = _listing(limit, cursor, source)
        return self._as(Page, "GET", "/api/events/rejected", params=params)

    def import_file(
        self, path: Path, source: str, mapping_text: str, progress: Progress | None
    ) -> Imported:
        if not path.exists():
            raise NotFound(f"no file at {path}")
        with path.open("rb") as handle:
            started = self._call(
                "POST",
                "/api/imports",
                files={"file": (path.name, handle)},
                data={"mapping": mapping_text, "source": source, "wait": "false"},
            )
        import_id = started["import_id"]
        while True:
            current = next(
                (
                    i
                    for i in self._as(Page, "GET", "/api/imports", params={"limit": 100}).items
                    if i["id"] == import_id
                ),
                None,
            )
            if current is None:
                raise NotFound(f"import {import_id} vanished from the server")
            if progress is not None:
                progress(int(current["rows"]), None)
            if current["status"] != "running":
                if current["status"] != "done":  # failed, or interrupted by a restart
                    raise ImportFailed(f"import {current['status']}: {current.get('reason')}")
                done = ("rows", "accepted", "duplicates", "rejected", "reject_file", "status")
                return Imported(
                    import_id=import_id,
                    file=path.name,
                    source=source,
                    **{key: current[key] for key in done},
                )
            time.sleep(0.3)

    def process(self) -> RunReport:
        return self._as(RunReport, "POST", "/api/pipeline/process")

    def rebuild(self) -> RunReport:
        return self._as(RunReport, "POST", "/api/pipeline/rebuild")

    def failed(self, limit: int) -> list[FailedEvent]:
        return self._as(list[FailedEvent], "GET", "/api/pipeline/failed", params={"limit": limit})

    def replay_failed(self) -> ReplayReport:
        return self._as(ReplayReport, "POST", "/api/pipeline/replay-failed")

    def profile(self, reference: str, limit: int, as_of: str | None) -> reader.Profile:
        params: dict[str, Any] = {"events": limit, **({"as_of": as_of} if as_of else {})}
        found = self._call("GET", f"/api/profiles/{quote(reference)}", params=params)
        # A union, not a class: parsed with its adapter (the view now, or as of a date).
        profile: reader.Profile = _adapter(reader.Profile).validate_python(found)
        return profile

    def search(
        self, identifier: str | None, trait: str | None, limit: int, cursor: str | None = None
    ) -> Page:
        params = _listing(limit, cursor) | {
            k: v for k, v in (("identifier", identifier), ("trait", trait)) if v is not None
        }
        return self._as(Page, "GET", "/api/profiles", params=params)

    def explain(self, first: str, second: str) -> identity.Explanation:
        return self._as(
            identity.Explanation,
            "GET",
            "/api/identity/explain",
            params={"first": first, "second": second},
        )

    def unmerge(self, first: str, second: str, reason: str | None) -> unmerging.Unmerged:
        return self._as(
            unmerging.Unmerged,
            "POST",
            "/api/identity/unmerge",
            json={"first": first, "second": second, "reason": reason},
        )

    def identity_match(self, incremental: bool) -> matching.MatchRun:
        return self._as(
            matching.MatchRun, "POST", "/api/identity/match", json={"incremental": incremental}
        )

    def identity_matches(self, status: str | None, limit: int) -> list[matching.Match]:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return self._as(list[matching.Match], "GET", "/api/identity/matches", params=params)

    def identity_decide(self, match_id: str, accept: bool, reason: str | None) -> matching.Match:
        return self._as(
            matching.Match,
            "POST",
            f"/api/identity/matches/{quote(match_id)}/decision",
            json={"accept": accept, "reason": reason},
        )

    def computed_traits(self) -> list[traits.Trait]:
        return self._as(list[traits.Trait], "GET", "/api/computed-traits")

    def define_trait(self, definition: dict[str, Any]) -> traits.Trait:
        return self._as(traits.Trait, "POST", "/api/computed-traits", json=definition)

    def delete_trait(self, name: str) -> Deleted:
        return self._as(Deleted, "DELETE", f"/api/computed-traits/{quote(name)}")

    def create_segment(self, name: str, query: str, exposed: bool = False) -> segments.Segment:
        body = {"name": name, "query": query, "exposed": exposed}
        return self._as(segments.Segment, "POST", "/api/segments", json=body)

    def update_segment(
        self, name: str, query: str, exposed: bool | None = None
    ) -> segments.Segment:
        body: dict[str, Any] = {"query": query}
        if exposed is not None:
            body["exposed"] = exposed
        return self._as(segments.Segment, "PUT", _segment(name), json=body)

    def expose_segment(self, name: str, exposed: bool) -> segments.Segment:
        action = "expose" if exposed else "unexpose"
        return self._as(segments.Segment, "POST", f"{_segment(name)}/{action}")

    def preview_segment(self, query: str) -> segments.Preview:
        return self._as(segments.Preview, "POST", "/api/segments/preview", json={"query": query})

    def list_segments(self) -> list[segments.SegmentSummary]:
        return self._as(list[segments.SegmentSummary], "GET", "/api/segments")

    def show_segment(self, name: str) -> segments.Segment:
        return self._as(segments.Segment, "GET", _segment(name))

    def delete_segment(self, name: str) -> Deleted:
        return self._as(Deleted, "DELETE", _segment(name))

    def segment_members(self, name: str, limit: int, cursor: str | None = None) -> Page:
        params = _listing(limit, cursor)
        return self._as(Page, "GET", f"{_segment(name)}/members", params=params)

    def segment_history(self, name: str) -> segments.History:
        return self._as(segments.History, "GET", f"{_segment(name)}/history")

    def segment_why(self, name: str, reference: str) -> segments.Why:
        return self._as(segments.Why, "GET", f"{_segment(name)}/why/{quote(reference)}")

    def segment_overlap(self) -> list[segments.Overlap]:
        return self._as(list[segments.Overlap], "GET", "/api/segments/overlap")

    def export_audience(self, segment: str, file_format: str, out: Path) -> exports.Exported:
        path = f"/api/audiences/{quote(segment)}/export"
        try:
            with self._http.stream("GET", path, params={"format": file_format}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _remote_error(response)
                with out.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                summary = response.headers["x-tessera-export"]
                return exports.Exported.model_validate_json(summary)
        except httpx.HTTPError as e:
            raise StoreUnavailable(f"cannot reach the server at {self.url}: {e}") from e

    def load_taxonomy(self, path: Path, name: str | None) -> taxonomy.TaxonomyLoaded:
        data = {"name": name} if name else {}
        return self._upload(taxonomy.TaxonomyLoaded, f"{_AUDIENCES}/taxonomies", path, data)

    def list_taxonomies(self) -> list[taxonomy.TaxonomySummary]:
        return self._as(list[taxonomy.TaxonomySummary], "GET", f"{_AUDIENCES}/taxonomies")

    def browse_taxonomy(
        self, name: str, parent: str | None, search: str | None
    ) -> list[taxonomy.TaxonomyEntry]:
        params = {k: v for k, v in (("parent", parent), ("search", search)) if v}
        return self._as(
            list[taxonomy.TaxonomyEntry],
            "GET",
            f"{_AUDIENCES}/taxonomies/{quote(name)}",
            params=params,
        )

    def import_feed(self, path: Path, options: feeds.FeedOptions) -> feeds.FeedImported:
        fields = {k: str(v) for k, v in asdict(options).items() if v is not None}
        return self._upload(feeds.FeedImported, f"{_AUDIENCES}/feeds", path, fields)

    def third_party(self) -> list[feeds.ThirdPartySegment]:
        return self._as(list[feeds.ThirdPartySegment], "GET", f"{_AUDIENCES}/third-party")

    def create_lookalike(self, request: LookalikeRequest) -> looks.Lookalike:
        return self._as(looks.Lookalike, "POST", f"{_AUDIENCES}/lookalikes", json=asdict(request))

    def show_lookalike(self, name: str) -> looks.Lookalike:
        return self._as(looks.Lookalike, "GET", f"{_AUDIENCES}/lookalikes/{quote(name)}")

    def list_lookalikes(self) -> list[looks.LookalikeSummary]:
        return self._as(list[looks.LookalikeSummary], "GET", f"{_AUDIENCES}/lookalikes")

    def set_lookalike_reach(self, name: str, reach: int) -> looks.Lookalike:
        named = f"{_AUDIENCES}/lookalikes/{quote(name)}"
        return self._as(looks.Lookalike, "PATCH", named, json={"reach": reach})

    def lookalike_scores(self, name: str, limit: int) -> list[looks.Score]:
        named = f"{_AUDIENCES}/lookalikes/{quote(name)}/scores"
        return self._as(list[looks.Score], "GET", named, params={"limit": limit})

    def holdout(self, segment: str, share: float) -> campaigns.Holdout:
        route = f"{_AUDIENCES}/{quote(segment)}/holdout"
        return self._as(campaigns.Holdout, "POST", route, json={"share": share})

    def import_campaign_results(self, path: Path) -> campaigns.CampaignImport:
        return self._upload(campaigns.CampaignImport, f"{_AUDIENCES}/campaigns/results", path, {})

    def import_campaign_conversions(self, path: Path) -> campaigns.ConversionImport:
        return self._upload(
            campaigns.ConversionImport, f"{_AUDIENCES}/campaigns/conversions", path, {}
        )

    def campaign_report(self, campaign: str | None, event: str) -> list[campaigns.CampaignResult]:
        params = {"event": event} | ({"campaign": campaign} if campaign else {})
        return self._as(
            list[campaigns.CampaignResult], "GET", f"{_AUDIENCES}/campaigns/report", params=params
        )

    def load_signals(self, document: object) -> signal_config.SignalsLoaded:
        return self._as(signal_config.SignalsLoaded, "PUT", f"{_AUDIENCES}/signals", json=document)

    def show_signals(self) -> signal_config.SignalConfig:
        return self._as(signal_config.SignalConfig, "GET", f"{_AUDIENCES}/signals")

    def list_users(self) -> list[users.User]:
        return self._as(list[users.User], "GET", "/api/users")

    def create_user(self, name: str, role: str, password: str) -> users.User:
        body = {"name": name, "role": role, "password": password}
        return self._as(users.User, "POST", "/api/users", json=body)

    def set_user_role(self, name: str, role: str) -> users.User:
        path = f"/api/users/{quote(name, safe='')}/role"
        return self._as(users.User, "PUT", path, json={"role": role})

    def set_user_enabled(self, name: str, enabled: bool) -> users.User:
        path = f"/api/users/{quote(name, safe='')}/" + ("enable" if enabled else "disable")
        return self._as(users.User, "POST", path)

    def list_tokens(self, user: str | None) -> list[tokens.Token]:
        params = {"user": user} if user else {}
        return self._as(list[tokens.Token], "GET", "/api/tokens", params=params)

    def create_token(
        self, user: str, scopes: list[str], expires: str | None, description: str | None
    ) -> tokens.CreatedToken:
        body = {"user": user, "scopes": scopes, "expires": expires, "description": description}
        return self._as(tokens.CreatedToken, "POST", "/api/tokens", json=body)

    def revoke_token(self, token_id: str) -> tokens.Token:
        return self._as(tokens.Token, "DELETE", f"/api/tokens/{quote(token_id, safe='')}")

    def audit_page(self, filters: dict[str, str], limit: int, cursor: str | None) -> Page:
        params: dict[str, Any] = {**filters, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._as(Page, "GET", "/api/audit", params=params)

    def audit_verify(self) -> audit.Verified:
        return self._as(audit.Verified, "GET", "/api/audit/verify")

    def audit_export(self, out: Path) -> audit.Exported:
        rows = 0
        with self._http.stream("GET", "/api/audit/export") as answer, out.open("wb") as handle:
            if answer.status_code >= 400:
                answer.read()
                raise _remote_error(answer)
            for line in answer.iter_lines():
                handle.write(line.encode() + b"\n")
                rows += 1
        return audit.Exported(rows=rows, path=str(out))

    def consent_state(self, reference: str) -> consent_changes.ConsentState:
        path = f"/api/profiles/{quote(reference, safe=':@+')}/consent"
        return self._as(consent_changes.ConsentState, "GET", path)

    def change_consent(
        self, reference: str, purposes: dict[str, bool], reason: str
    ) -> consent_changes.ConsentChanged:
        path = f"/api/profiles/{quote(reference, safe=':@+')}/consent"
        body = {"purposes": purposes, "reason": reason}
        return self._as(consent_changes.ConsentChanged, "POST", path, json=body)

    def _as(self, shape: type[T], method: str, path: str, **kwargs: Any) -> T:
        """The server's answer parsed into the use case's result type: the same model
        the LocalBackend returns, so the CLI prints one shape either way."""
        adapter: TypeAdapter[T] = _adapter(shape)
        return adapter.validate_python(self._call(method, path, **kwargs))

    def _upload(self, shape: type[T], path: str, file: Path, data: dict[str, str]) -> T:
        if not file.exists():
            raise NotFound(f"no file at {file}")
        with file.open("rb") as handle:
            return self._as(shape, "POST", path, files={"file": (file.name, handle)}, data=data)

    def purge_anonymous(self, dry_run: bool) -> lifetime.Purged:
        return self._as(
            lifetime.Purged,
            "POST",
            "/api/audiences/purge",
            params={"dry_run": str(dry_run).lower()},
        )

    def backup(self, folder: Path) -> backups.Backup:
        """GET /api/backup's archive, unpacked into `folder` (new or empty)."""
        backups.check_empty(folder)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        archive = folder / ".download.tar"
        try:
            where = {"folder": str(folder.expanduser().resolve())}
            with self._http.stream("GET", "/api/backup", params=where) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _remote_error(response)
                with archive.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
            with tarfile.open(archive) as unpacking:
                unpacking.extractall(folder, filter="data")
        except httpx.HTTPError as e:
            raise StoreUnavailable(f"cannot reach the server at {self.url}: {e}") from e
        finally:
            archive.unlink(missing_ok=True)
        return backups.read_manifest(folder)

    # -- data-subject requests (issue 15) ------------------------------------------------

    def privacy_access(self, identifier: str) -> access.AccessReport:
        body = {"identifier": identifier}
        return self._as(access.AccessReport, "POST", "/api/privacy/access", json=body)

    def privacy_erase(self, identifier: str) -> dsr.PrivacyRequest:
        body = {"identifier": identifier}
        return self._as(dsr.PrivacyRequest, "POST", "/api/privacy/erase", json=body)

    def privacy_suppress(self, identifier: str) -> dsr.PrivacyRequest:
        body = {"identifier": identifier}
        path = "/api/privacy/suppress"
        return self._as(dsr.PrivacyRequest, "POST", path, json=body)

    def privacy_requests(self, limit: int) -> list[dsr.PrivacyRequest]:
        shape = list[dsr.PrivacyRequest]
        return self._as(shape, "GET", "/api/privacy/requests", params={"limit": limit})

    def privacy_request(self, request_id: str) -> dsr.PrivacyRequest:
        path = "/api/privacy/requests/" + quote(request_id, safe="")
        return self._as(dsr.PrivacyRequest, "GET", path)

    def retention_policies(self) -> list[retention.Policy]:
        return self._as(list[retention.Policy], "GET", _RETENTION + "/policies")

    def set_retention_policy(self, name: str, request: PolicyRequest) -> retention.Policy:
        path = f"{_RETENTION}/policies/{quote(name, safe='')}"
        return self._as(retention.Policy, "PUT", path, json=asdict(request))

    def delete_retention_policy(self, name: str) -> Deleted:
        return self._as(Deleted, "DELETE", f"{_RETENTION}/policies/{quote(name, safe='')}")

    def run_retention(self, dry_run: bool) -> retention.RetentionRun:
        params = {"dry_run": str(dry_run).lower()}
        return self._as(retention.RetentionRun, "POST", _RETENTION + "/run", params=params)

    def retention_runs(self, limit: int) -> list[retention.RetentionRun]:
        shape = list[retention.RetentionRun]
        return self._as(shape, "GET", _RETENTION + "/runs", params={"limit": limit})

    # -- tracking plans (issue 15) -------------------------------------------------------

    def list_plans(self) -> list[plans.Plan]:
        return self._as(list[plans.Plan], "GET", "/api/plans")

    def show_plan(self, source: str) -> plans.Plan:
        return self._as(plans.Plan, "GET", _plan(source))

    def set_plan(self, source: str, mode: str, plan: dict[str, Any]) -> plans.Plan:
        return self._as(plans.Plan, "PUT", _plan(source), json={"mode": mode, "plan": plan})

    def delete_plan(self, source: str) -> Deleted:
        return self._as(Deleted, "DELETE", _plan(source))

    def plan_violations(self, source: str, limit: int) -> list[plans.PlanViolation]:
        shape = list[plans.PlanViolation]
        return self._as(shape, "GET", _plan(source) + "/violations", params={"limit": limit})

    def infer_plan(self, source: str, days: int) -> plans.Plan:
        return self._as(plans.Plan, "POST", _plan(source) + "/infer", params={"days": days})

    def close(self) -> None:
        self._http.close()

    def load_loyalty(self, text: str) -> loyalty.LoyaltyLoaded:
        rules = loyalty.parse(text)  # checked here: the server takes the rules as JSON
        return self._as(loyalty.LoyaltyLoaded, "PUT", "/api/loyalty", json=rules.model_dump())

    def show_loyalty(self) -> loyalty.LoyaltyLoaded:
        return self._as(loyalty.LoyaltyLoaded, "GET", "/api/loyalty")

    # -- the product catalogue (issue 14) -------------------------------------------------

    def import_catalog(self, path: Path, mapping_text: str | None) -> products.CatalogImported:
        data = {"mapping": mapping_text} if mapping_text else {}
        return self._upload(products.CatalogImported, "/api/catalog/import", path, data)

    def list_products(
        self,
        search: str | None,
        category: str | None,
        brand: str | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page:
        given = {"search": search, "category": category, "brand": brand, "cursor": cursor}
        params = {"limit": limit} | {k: v for k, v in given.items() if v}
        return self._as(Page, "GET", "/api/catalog/products", params=params)

    def show_product(self, product_id: str) -> products.CatalogProduct:
        return self._as(products.CatalogProduct, "GET", _product(product_id))

    def set_product_retired(self, product_id: str, retired: bool) -> products.CatalogProduct:
        action = "retire" if retired else "restore"
        return self._as(products.CatalogProduct, "POST", f"{_product(product_id)}/{action}")

    # -- destinations (issue 13) ----------------------------------------------------------

    def list_destinations(self) -> list[destinations.Destination]:
        return self._as(list[destinations.Destination], "GET", _DESTINATIONS)

    def create_destination(self, request: DestinationRequest) -> destinations.Created:
        return self._as(destinations.Created, "POST", _DESTINATIONS, json=asdict(request))

    def show_destination(self, name: str) -> destinations.Destination:
        return self._as(destinations.Destination, "GET", _destination(name))

    def set_destination_enabled(self, name: str, enabled: bool) -> destinations.Destination:
        path = _destination(name) + ("/enable" if enabled else "/disable")
        return self._as(destinations.Destination, "POST", path)

    def delete_destination(self, name: str) -> destinations.DestinationDeleted:
        return self._as(destinations.DestinationDeleted, "DELETE", _destination(name))

    def rotate_destination_secret(self, name: str) -> destinations.Created:
        return self._as(destinations.Created, "POST", _destination(name) + "/rotate-secret")

    def show_predictions(self) -> predictions.Predictions:
        return self._as(predictions.Predictions, "GET", _PREDICT)

    def fit_predictions(self) -> predictions.Predictions:
        return self._as(predictions.Predictions, "POST", f"{_PREDICT}/fit")

    def score_predictions(self) -> predictions.Predictions:
        return self._as(predictions.Predictions, "POST", f"{_PREDICT}/score")

    def profile_predictions(self, profile_id: str) -> predictions.PersonPredictions:
        path = f"{_PREDICT}/profiles/{quote(profile_id, safe='')}"
        return self._as(predictions.PersonPredictions, "GET", path)

    def destination_deliveries(self, name: str, minutes: int) -> deliveries.Report:
        path = _destination(name) + "/deliveries"
        return self._as(deliveries.Report, "GET", path, params={"minutes": minutes})

    def destination_dead_letters(self, name: str, limit: int) -> list[dead_letters.DeadLetter]:
        path = _destination(name) + "/dead-letters"
        return self._as(list[dead_letters.DeadLetter], "GET", path, params={"limit": limit})

    def replay_destination(
        self, name: str, dead_letters_too: bool, since: datetime | None
    ) -> dead_letters.Replayed:
        body = {"dead_letters": dead_letters_too, "since": since.isoformat() if since else None}
        return self._as(dead_letters.Replayed, "POST", _destination(name) + "/replay", json=body)

    # -- personalisation (issue 14) ---------------------------------------------------------

    def train_recommendations(self) -> recs.Trained:
        return self._as(recs.Trained, "POST", "/api/recommendations/train")

    def recommendations_status(self) -> recs.ModelStatus:
        return self._as(recs.ModelStatus, "GET", "/api/recommendations")

    def recommend(self, reference: str, n: int) -> recs.Recommendations:
        path = f"/api/recommendations/{quote(reference, safe='')}"
        return self._as(recs.Recommendations, "GET", path, params={"n": n})

    def list_offers(self) -> list[offers.Offer]:
        return self._as(list[offers.Offer], "GET", _OFFERS)

    def create_offer(self, spec: offers.OfferSpec) -> offers.Offer:
        return self._as(offers.Offer, "POST", _OFFERS, json=spec.model_dump(mode="json"))

    def show_offer(self, name: str) -> offers.Offer:
        return self._as(offers.Offer, "GET", f"{_OFFERS}/{quote(name, safe='')}")

    def delete_offer(self, name: str) -> Deleted:
        return self._as(Deleted, "DELETE", f"{_OFFERS}/{quote(name, safe='')}")

    def preview_decision(
        self, reference: str, channel: str, strategy: Strategy | None
    ) -> decisions.Decision:
        path = f"/api/decisions/preview/{quote(reference, safe='')}"
        params = {"channel": channel} | ({"strategy": strategy} if strategy else {})
        return self._as(decisions.Decision, "GET", path, params=params)

    def recent_decisions(self, limit: int) -> list[decisions.RecordedDecision]:
        return self._as(
            list[decisions.RecordedDecision], "GET", "/api/decisions", params={"limit": limit}
        )

    def offer_lift(self, offer: str | None, event: str) -> list[decisions.OfferLift]:
        params = {"event": event} | ({"offer": offer} if offer else {})
        return self._as(list[decisions.OfferLift], "GET", "/api/decisions/lift", params=params)

    def list_publishable_keys(self) -> list[keys.PublishableKey]:
        return self._as(list[keys.PublishableKey], "GET", _KEYS)

    def create_publishable_key(self, source: str) -> keys.PublishableKeyCreated:
        return self._as(keys.PublishableKeyCreated, "POST", _KEYS, json={"source": source})

    def revoke_publishable_key(self, key_id: str) -> keys.PublishableKey:
        path = f"{_KEYS}/{quote(key_id, safe='')}/revoke"
        return self._as(keys.PublishableKey, "POST", path)

    def caller(self, text: str) -> callcentre.CallerCard:
        return self._as(callcentre.CallerCard, "GET", "/api/callcentre", params={"q": text})

    def exposed_traits(self) -> exposure.ExposedTraits:
        return self._as(exposure.ExposedTraits, "GET", "/api/personalize/traits")

    def expose_trait(self, name: str, exposed: bool) -> exposure.ExposedTraits:
        action = "expose" if exposed else "unexpose"
        path = f"/api/personalize/traits/{quote(name, safe='')}/{action}"
        return self._as(exposure.ExposedTraits, "POST", path)


def running_server(settings: Settings) -> str | None:
    """The URL of a live `tessera serve` on this data directory, if there is one."""
    path = settings.server_file_path
    if not path.exists():
        return None
    try:
        info = orjson.loads(path.read_bytes())
        os.kill(int(info["pid"]), 0)
        url = str(info["url"])
        httpx.get(f"{url}/api/health", timeout=2).raise_for_status()
    except (OSError, ValueError, KeyError, orjson.JSONDecodeError, httpx.HTTPError):
        return None
    return url


def open_backend(settings: Settings) -> Backend:
    url = running_server(settings)
    if url is not None:
        token = load_or_create_admin_token(settings.admin_token_path, settings.admin_token)
        return RemoteBackend(url, token)
    return LocalBackend(settings)


_AUDIENCES = "/api/audiences"
_DESTINATIONS = "/api/destinations"
_PREDICT = "/api/predict"
_OFFERS = "/api/offers"
_KEYS = "/api/personalize/keys"
_RETENTION = "/api/privacy/retention"


def _product(product_id: str) -> str:
    return f"/api/catalog/products/{quote(product_id, safe='')}"


def _plan(source: str) -> str:
    return "/api/plans/" + quote(source, safe="")


def _destination(name: str) -> str:
    return f"{_DESTINATIONS}/{quote(name, safe='')}"


def _segment(name: str) -> str:
    return f"/api/segments/{quote(name)}"


def _listing(limit: int, cursor: str | None, source: str | None = None) -> dict[str, Any]:
    """Query parameters of one page of a list: the page size, and the cursor and source
    only when given (the API takes an absent cursor as the first page)."""
    given = {"cursor": cursor, "source": source}
    return {"limit": limit} | {k: v for k, v in given.items() if v}


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(shape: Any) -> TypeAdapter[Any]:
    """One TypeAdapter per result type (building one compiles a validator)."""
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    return _ADAPTERS[shape]


def _remote_error(response: httpx.Response) -> TesseraError:
    try:
        body = response.json()
        message = body.get("message") or body.get("detail") or response.text
    except ValueError:
        message = response.text
    # Keep the server's code and status, so the CLI shows `not_found`, not `error`.
    code = _code_of(response)
    remote = type(
        "RemoteError",
        (TesseraError,),
        {"code": code if isinstance(code, str) else "error", "status": response.status_code},
    )
    error: TesseraError = remote(str(message))
    return error


def _code_of(response: httpx.Response) -> object:
    try:
        return response.json().get("code")
    except ValueError:
        return None
