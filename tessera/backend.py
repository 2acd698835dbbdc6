"""How the CLI reaches Tessera: the running server's admin API, or the store itself.

While `tessera serve` runs it owns the DuckDB file, so CLI commands go through its
admin API; otherwise they open the store directly. Both backends call the same
feature functions in the end (the remote one through the API that calls them).
"""

from __future__ import annotations

import os
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
from tessera.errors import ImportFailed, NotFound, StoreUnavailable, TesseraError
from tessera.events import failures, importer, reading
from tessera.events.failures import FailedEvent
from tessera.events.importer import Imported
from tessera.events.sources import SourceKey, SourceView
from tessera.events.timestamps import utc_now
from tessera.identity import explain as identity
from tessera.identity import matching, unmerging
from tessera.paging import Page
from tessera.pipeline.runs import ReplayReport, RunReport, Stats
from tessera.privacy.keys import load_or_create_admin_token
from tessera.profiles import reader, traits, view
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
    def create_segment(self, name: str, query: str) -> segments.Segment: ...
    def update_segment(self, name: str, query: str) -> segments.Segment: ...
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
    def list_destinations(self) -> list[destinations.Destination]: ...
    def create_destination(self, request: DestinationRequest) -> destinations.Created: ...
    def show_destination(self, name: str) -> destinations.Destination: ...
    def set_destination_enabled(self, name: str, enabled: bool) -> destinations.Destination: ...
    def delete_destination(self, name: str) -> destinations.DestinationDeleted: ...
    def rotate_destination_secret(self, name: str) -> destinations.Created: ...
    def destination_deliveries(self, name: str, minutes: int) -> deliveries.Report: ...
    def destination_dead_letters(self, name: str, limit: int) -> list[dead_letters.DeadLetter]: ...
    def replay_destination(
        self, name: str, dead_letters_too: bool, since: datetime | None
    ) -> dead_letters.Replayed: ...
    def close(self) -> None: ...


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

    def create_segment(self, name: str, query: str) -> segments.Segment:
        return segments.create(self.runtime, name, query)

    def update_segment(self, name: str, query: str) -> segments.Segment:
        return segments.update(self.runtime, name, query)

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
        policy = self.runtime.settings.advertising_consent
        with out.open("w", newline="", encoding="utf-8") as handle:
            return exports.export(self.runtime.store, segment, file_format, handle, policy)

    def purge_anonymous(self, dry_run: bool) -> lifetime.Purged:
        return self.runtime.pipeline.purge_expired(dry_run=dry_run)

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

    def close(self) -> None:
        self.runtime.close()

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

    def create_segment(self, name: str, query: str) -> segments.Segment:
        body = {"name": name, "query": query}
        return self._as(segments.Segment, "POST", "/api/segments", json=body)

    def update_segment(self, name: str, query: str) -> segments.Segment:
        return self._as(segments.Segment, "PUT", _segment(name), json={"query": query})

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

    def close(self) -> None:
        self._http.close()

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
