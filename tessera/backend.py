"""How the CLI reaches Tessera: the running server's admin API, or the store itself.

While `tessera serve` runs it owns the DuckDB file, so CLI commands go through its
admin API; otherwise they open the store directly. Both backends call the same
feature functions in the end (the remote one through the API that calls them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import orjson

from tessera.audiences import campaigns, exports, feeds, signals, taxonomy
from tessera.errors import ImportFailed, NotFound, StoreUnavailable, TesseraError
from tessera.events import failures, importer, log
from tessera.events.timestamps import utc_now
from tessera.identity import explain as identity
from tessera.identity import unmerging
from tessera.identity.lookup import identifier_from_text, lookup
from tessera.privacy.keys import load_or_create_admin_token
from tessera.profiles import catalogue, view
from tessera.profiles.asof import profile_as_of
from tessera.runtime import Runtime
from tessera.settings import Settings

Progress = Callable[[int, int | None], None]
# One page of a list as JSON: items, total, limit, next_cursor (tessera.paging.Page), the
# same through the store or the server's API.
PageJson = dict[str, Any]


class Backend(Protocol):
    def stats(self) -> dict[str, Any]: ...
    def list_sources(self) -> list[dict[str, Any]]: ...
    def create_source(self, name: str, channel: str) -> dict[str, Any]: ...
    def rotate_key(self, name: str) -> dict[str, Any]: ...
    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]: ...
    def tail(self, limit: int, source: str | None, cursor: str | None = None) -> PageJson: ...
    def rejected(self, limit: int, source: str | None, cursor: str | None = None) -> PageJson: ...
    def import_file(
        self, path: Path, source: str, mapping_text: str, progress: Progress | None
    ) -> dict[str, Any]: ...
    def process(self) -> dict[str, Any]: ...
    def rebuild(self) -> dict[str, Any]: ...
    def failed(self, limit: int) -> list[dict[str, Any]]: ...
    def replay_failed(self) -> dict[str, Any]: ...
    def profile(self, reference: str, limit: int, as_of: str | None) -> dict[str, Any]: ...
    def search(
        self, identifier: str | None, trait: str | None, limit: int, cursor: str | None = None
    ) -> PageJson: ...
    def explain(self, first: str, second: str) -> dict[str, Any]: ...
    def unmerge(self, first: str, second: str, reason: str | None) -> dict[str, Any]: ...
    def computed_traits(self) -> list[dict[str, Any]]: ...
    def define_trait(self, definition: dict[str, Any]) -> dict[str, Any]: ...
    def delete_trait(self, name: str) -> dict[str, Any]: ...
    def segments(
        self,
        action: str,
        name: str | None = None,
        query: str | None = None,
        reference: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Any: ...
    def export_audience(self, segment: str, file_format: str, out: Path) -> dict[str, Any]: ...
    def purge_anonymous(self, dry_run: bool) -> dict[str, Any]: ...
    def audiences(self, action: str, **options: Any) -> Any: ...
    def close(self) -> None: ...


class LocalBackend:
    """Opens the store in this process (no server running)."""

    def __init__(self, settings: Settings) -> None:
        self.runtime = Runtime.open(settings)

    def stats(self) -> dict[str, Any]:
        return {**log.stats(self.runtime.store), **self.runtime.pipeline.lag()}

    def list_sources(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.runtime.sources.list()]

    def create_source(self, name: str, channel: str) -> dict[str, Any]:
        return self.runtime.sources.create(name, channel).to_dict()

    def rotate_key(self, name: str) -> dict[str, Any]:
        return self.runtime.sources.rotate_key(name).to_dict()

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        return self.runtime.sources.set_enabled(name, enabled).to_dict()

    def tail(self, limit: int, source: str | None, cursor: str | None = None) -> PageJson:
        source_id = self.runtime.sources.get(source).id if source else None
        found = log.tail(self.runtime.store, limit=limit, source_id=source_id, cursor=cursor)
        return found.to_dict()

    def rejected(self, limit: int, source: str | None, cursor: str | None = None) -> PageJson:
        source_id = self.runtime.sources.get(source).id if source else None
        found = log.rejected(self.runtime.store, limit=limit, source_id=source_id, cursor=cursor)
        return found.to_dict()

    def import_file(
        self, path: Path, source: str, mapping_text: str, progress: Progress | None
    ) -> dict[str, Any]:
        summary = importer.import_file(
            store=self.runtime.store,
            writer=self.runtime.writer,
            source=self.runtime.sources.get(source),
            path=path,
            mapping=importer.load_mapping(mapping_text),
            rejects_dir=self.runtime.settings.rejects_dir,
            progress=progress,
        )
        return summary.to_dict()

    def process(self) -> dict[str, Any]:
        return self.runtime.pipeline.process().to_dict()

    def rebuild(self) -> dict[str, Any]:
        return self.runtime.pipeline.rebuild().to_dict()

    def failed(self, limit: int) -> list[dict[str, Any]]:
        return failures.listing(self.runtime.store, limit=limit)

    def replay_failed(self) -> dict[str, Any]:
        return self.runtime.pipeline.replay_failed().to_dict()

    def profile(self, reference: str, limit: int, as_of: str | None) -> dict[str, Any]:
        store, settings = self.runtime.store, self.runtime.settings
        if as_of:
            return profile_as_of(store, settings, reference, as_of)
        profile_id = lookup(store, reference, settings.default_region)
        return view.profile_view(store, profile_id, limit=limit)

    def search(
        self, identifier: str | None, trait: str | None, limit: int, cursor: str | None = None
    ) -> PageJson:
        found = view.search(
            self.runtime.store, identifier=identifier, trait=trait, limit=limit, cursor=cursor
        )
        return found.to_dict()

    def explain(self, first: str, second: str) -> dict[str, Any]:
        region = self.runtime.settings.default_region
        return identity.explain(
            self.runtime.store,
            identifier_from_text(first, region),
            identifier_from_text(second, region),
        )

    def unmerge(self, first: str, second: str, reason: str | None) -> dict[str, Any]:
        return unmerging.unmerge(
            self.runtime.store,
            self.runtime.pipeline,
            first,
            second,
            reason,
            self.runtime.settings.default_region,
        ).to_dict()

    def computed_traits(self) -> list[dict[str, Any]]:
        return [
            t.to_dict()
            for t in catalogue.definitions(
                self.runtime.store, self.runtime.settings.computed_traits_file
            )
        ]

    def define_trait(self, definition: dict[str, Any]) -> dict[str, Any]:
        trait = catalogue.save_definition(self.runtime.store, definition)
        self.runtime.pipeline.refresh_computed_traits()
        return trait.to_dict()

    def delete_trait(self, name: str) -> dict[str, Any]:
        catalogue.delete_definition(self.runtime.store, name)
        return {"deleted": name}

    def segments(
        self,
        action: str,
        name: str | None = None,
        query: str | None = None,
        reference: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Any:
        from tessera.segments import service

        store = self.runtime.store
        names = catalogue.names(store, self.runtime.settings.computed_traits_file)
        if action == "create":
            return service.create(store, name or "", query or "", names)
        if action == "update":
            return service.update(store, name or "", query or "", names)
        if action == "preview":
            return service.preview(store, query or "", names)
        if action == "list":
            return service.list_segments(store)
        if action == "show":
            return service.get(store, name or "")
        if action == "delete":
            service.delete(store, name or "")
            return {"deleted": name}
        if action == "members":
            return service.members(store, name or "", limit=limit, cursor=cursor).to_dict()
        if action == "history":
            return service.history(store, name or "")
        if action == "overlap":
            return service.overlap(store)
        if action == "why":
            profile = lookup(store, reference or "", self.runtime.settings.default_region)
            return service.why(store, name or "", profile)
        raise ValueError(action)

    def export_audience(self, segment: str, file_format: str, out: Path) -> dict[str, Any]:
        policy = self.runtime.settings.advertising_consent
        with out.open("w", newline="", encoding="utf-8") as handle:
            return exports.export(self.runtime.store, segment, file_format, handle, policy)

    def purge_anonymous(self, dry_run: bool) -> dict[str, Any]:
        return self.runtime.pipeline.purge_expired(dry_run=dry_run)

    def audiences(self, action: str, **options: Any) -> Any:
        """The DMP side's use cases, one per action (RemoteBackend maps them to the API)."""
        # scipy (lookalikes) is imported only by the commands that need it.
        from tessera.audiences import lookalike

        store, settings, now = self.runtime.store, self.runtime.settings, utc_now()
        rejects = settings.rejects_dir
        get = options.get

        def load_signals() -> dict[str, Any]:
            result = signals.load_config(store, options["document"], now)
            self.runtime.pipeline.refresh_computed_traits()
            return result

        actions: dict[str, Callable[[], Any]] = {
            "taxonomy_load": lambda: taxonomy.load(
                store,
                options["path"],
                get("name") or taxonomy.default_name(options["path"]),
                rejects,
            ),
            "taxonomy_list": lambda: taxonomy.taxonomies(store),
            "taxonomy_browse": lambda: taxonomy.browse(
                store, options["name"], parent=get("parent"), search=get("search")
            ),
            "feed_import": lambda: feeds.import_feed(
                store,
                options["path"],
                feeds.FeedOptions(options["provider"], options["taxonomy"], get("cpm"),
                                  options["lifetime_days"], get("restrictions")),
                rejects,
                now,
            ),
            "third_party": lambda: feeds.segments(store, now),
            "lookalike_create": lambda: lookalike.create(
                store, options["name"], options["seed"], now=now, reach=get("reach"),
                accuracy=get("accuracy"), method=options["method"],
                population=options["population"],
            ),
            "lookalike_show": lambda: lookalike.get(store, options["name"]),
            "lookalike_list": lambda: lookalike.list_lookalikes(store),
            "lookalike_reach": lambda: lookalike.set_reach(
                store, options["name"], options["reach"], now
            ),
            "lookalike_scores": lambda: lookalike.scores_of(
                store, options["name"], options["limit"]
            ),
            "holdout": lambda: campaigns.holdout(store, options["segment"], options["share"], now),
            "campaign_results": lambda: campaigns.import_results(
                store, options["path"], rejects, now
            ),
            "campaign_conversions": lambda: campaigns.import_conversions(
                store, options["path"], rejects
            ),
            "campaign_report": lambda: campaigns.report(
                store, campaign=get("campaign"), conversion_event=options["event"]
            ),
            "signals_load": load_signals,
            "signals_list": lambda: {
                "signals": signals.definitions(store),
                "categories": signals.categories(store),
            },
        }
        return actions[action]()

    def close(self) -> None:
        self.runtime.close()


class RemoteBackend:
    """Talks to a running server's admin API with the admin token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise StoreUnavailable(f"cannot reach the server at {self.url}: {e}") from e
        if response.status_code >= 400:
            raise _remote_error(response)
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/stats")
        return result

    def list_sources(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/api/sources")
        return result

    def create_source(self, name: str, channel: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/api/sources", json={"name": name, "channel": channel}
        )
        return result

    def rotate_key(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/api/sources/{name}/rotate-key")
        return result

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        action = "enable" if enabled else "disable"
        result: dict[str, Any] = self._call("POST", f"/api/sources/{name}/{action}")
        return result

    def tail(self, limit: int, source: str | None, cursor: str | None = None) -> PageJson:
        result: PageJson = self._call("GET", "/api/events", params=_listing(limit, cursor, source))
        return result

    def rejected(self, limit: int, source: str | None, cursor: str | None = None) -> PageJson:
        params = _listing(limit, cursor, source)
        result: PageJson = self._call("GET", "/api/events/rejected", params=params)
        return result

    def import_file(
        self, path: Path, source: str, mapping_text: str, progress: Progress | None
    ) -> dict[str, Any]:
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
                (i for i in self._call("GET", "/api/imports") if i["id"] == import_id), None
            )
            if current is None:
                raise NotFound(f"import {import_id} vanished from the server")
            if progress is not None:
                progress(int(current["rows"]), None)
            if current["status"] != "running":
                if current["status"] != "done":  # failed, or interrupted by a restart
                    raise ImportFailed(f"import {current['status']}: {current.get('reason')}")
                return {
                    "import_id": import_id,
                    "file": path.name,
                    "source": source,
                    **{
                        k: current[k]
                        for k in (
                            "rows",
                            "accepted",
                            "duplicates",
                            "rejected",
                            "reject_file",
                            "status",
                        )
                    },
                }
            time.sleep(0.3)

    def process(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/pipeline/process")
        return result

    def rebuild(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/pipeline/rebuild")
        return result

    def failed(self, limit: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", "/api/pipeline/failed", params={"limit": limit}
        )
        return result

    def replay_failed(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/pipeline/replay-failed")
        return result

    def profile(self, reference: str, limit: int, as_of: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"events": limit, **({"as_of": as_of} if as_of else {})}
        result: dict[str, Any] = self._call(
            "GET", f"/api/profiles/{quote(reference)}", params=params
        )
        return result

    def search(
        self, identifier: str | None, trait: str | None, limit: int, cursor: str | None = None
    ) -> PageJson:
        params = _listing(limit, cursor) | {
            k: v for k, v in (("identifier", identifier), ("trait", trait)) if v is not None
        }
        result: PageJson = self._call("GET", "/api/profiles", params=params)
        return result

    def explain(self, first: str, second: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", "/api/identity/explain", params={"first": first, "second": second}
        )
        return result

    def unmerge(self, first: str, second: str, reason: str | None) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST",
            "/api/identity/unmerge",
            json={"first": first, "second": second, "reason": reason},
        )
        return result

    def computed_traits(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/api/computed-traits")
        return result

    def define_trait(self, definition: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/api/computed-traits", json=definition)
        return result

    def delete_trait(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/api/computed-traits/{quote(name)}")
        return result

    def segments(
        self,
        action: str,
        name: str | None = None,
        query: str | None = None,
        reference: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Any:
        base = "/api/segments"
        named = f"{base}/{quote(name or '')}"
        calls: dict[str, tuple[str, str, dict[str, Any]]] = {
            "create": ("POST", base, {"json": {"name": name, "query": query}}),
            "update": ("PUT", named, {"json": {"query": query}}),
            "preview": ("POST", f"{base}/preview", {"json": {"query": query}}),
            "list": ("GET", base, {}),
            "show": ("GET", named, {}),
            "delete": ("DELETE", named, {}),
            "members": ("GET", f"{named}/members", {"params": _listing(limit, cursor)}),
            "history": ("GET", f"{named}/history", {}),
            "overlap": ("GET", f"{base}/overlap", {}),
            "why": ("GET", f"{named}/why/{quote(reference or '')}", {}),
        }
        method, path, extra = calls[action]
        return self._call(method, path, **extra)

    def export_audience(self, segment: str, file_format: str, out: Path) -> dict[str, Any]:
        path = f"/api/audiences/{quote(segment)}/export"
        try:
            with self._http.stream("GET", path, params={"format": file_format}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _remote_error(response)
                with out.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                summary: dict[str, Any] = orjson.loads(response.headers["x-tessera-export"])
                return summary
        except httpx.HTTPError as e:
            raise StoreUnavailable(f"cannot reach the server at {self.url}: {e}") from e

    def audiences(self, action: str, **options: Any) -> Any:
        base = "/api/audiences"
        if action == "taxonomy_load":
            path: Path = options["path"]
            with path.open("rb") as handle:
                data = {"name": options["name"]} if options.get("name") else {}
                return self._call(
                    "POST", f"{base}/taxonomies", files={"file": (path.name, handle)}, data=data
                )
        if action == "taxonomy_list":
            return self._call("GET", f"{base}/taxonomies")
        if action == "taxonomy_browse":
            params = {k: options[k] for k in ("parent", "search") if options.get(k)}
            return self._call("GET", f"{base}/taxonomies/{quote(options['name'])}", params=params)
        if action == "feed_import":
            path = options["path"]
            fields = {k: str(options[k]) for k in ("provider", "taxonomy", "cpm",
                      "lifetime_days", "restrictions") if options.get(k) is not None}  # fmt: skip
            with path.open("rb") as handle:
                return self._call(
                    "POST", f"{base}/feeds", files={"file": (path.name, handle)}, data=fields
                )
        if action == "third_party":
            return self._call("GET", f"{base}/third-party")
        if action == "lookalike_create":
            return self._call("POST", f"{base}/lookalikes", json=options)
        if action == "lookalike_show":
            return self._call("GET", f"{base}/lookalikes/{quote(options['name'])}")
        if action == "lookalike_list":
            return self._call("GET", f"{base}/lookalikes")
        if action == "lookalike_reach":
            named = f"{base}/lookalikes/{quote(options['name'])}"
            return self._call("PATCH", named, json={"reach": options["reach"]})
        if action == "lookalike_scores":
            named = f"{base}/lookalikes/{quote(options['name'])}/scores"
            return self._call("GET", named, params={"limit": options["limit"]})
        if action == "holdout":
            route = f"{base}/{quote(options['segment'])}/holdout"
            return self._call("POST", route, json={"share": options["share"]})
        if action in ("campaign_results", "campaign_conversions"):
            kind = action.split("_")[1]
            with options["path"].open("rb") as handle:
                upload = {"file": (options["path"].name, handle)}
                return self._call("POST", f"{base}/campaigns/{kind}", files=upload)
        if action == "signals_load":
            return self._call("PUT", f"{base}/signals", json=options["document"])
        if action == "signals_list":
            return self._call("GET", f"{base}/signals")
        if action == "campaign_report":
            params = {"event": options["event"]}
            if options.get("campaign"):
                params["campaign"] = options["campaign"]
            return self._call("GET", f"{base}/campaigns/report", params=params)
        raise ValueError(action)

    def purge_anonymous(self, dry_run: bool) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/api/audiences/purge", params={"dry_run": str(dry_run).lower()}
        )
        return result

    def close(self) -> None:
        self._http.close()


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


def _listing(limit: int, cursor: str | None, source: str | None = None) -> dict[str, Any]:
    """Query parameters of one page of a list: the page size, and the cursor and source
    only when given (the API takes an absent cursor as the first page)."""
    given = {"cursor": cursor, "source": source}
    return {"limit": limit} | {k: v for k, v in given.items() if v}


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
