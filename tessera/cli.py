"""The `tessera` command. An edge: it parses arguments and prints; the work is elsewhere."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tessera.audiences.campaigns import CampaignImport
from tessera.audiences.feeds import FeedOptions
from tessera.audiences.lookalike_report import Lookalike
from tessera.backend import Backend, DestinationRequest, LookalikeRequest, open_backend
from tessera.errors import InvalidField, TesseraError, UnreadableFile
from tessera.events.sources import CHANNELS
from tessera.paging import Page
from tessera.pipeline.runs import RunReport
from tessera.profiles.reader import ProfileAsOf, ProfileView
from tessera.results import Result, wire
from tessera.segments.actions import Condition, Why
from tessera.settings import Settings
from tessera.store.connection import PRIVATE_UMASK

app = typer.Typer(
    help="Tessera: an open-source customer data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sources_app = typer.Typer(
    help="Sources: the channels you collect from, and their write keys.", no_args_is_help=True
)
events_app = typer.Typer(help="Read the event log.", no_args_is_help=True)
profiles_app = typer.Typer(
    help="Unified profiles: the 360° view, search, why and unmerge.", no_args_is_help=True
)
traits_app = typer.Typer(
    help="Computed traits: aggregates over each person's events.", no_args_is_help=True
)
app.add_typer(sources_app, name="sources")
app.add_typer(events_app, name="events")
app.add_typer(profiles_app, name="profiles")
segments_app = typer.Typer(
    help="Segments: who matches a condition, kept up to date.", no_args_is_help=True
)
app.add_typer(traits_app, name="traits")
app.add_typer(segments_app, name="segments")
audiences_app = typer.Typer(help="The DMP side: audiences for ad platforms.", no_args_is_help=True)
app.add_typer(audiences_app, name="audiences")
taxonomy_app = typer.Typer(help="Taxonomies (IAB Audience, Content).", no_args_is_help=True)
feed_app = typer.Typer(help="Third-party data providers' feeds.", no_args_is_help=True)
audiences_app.add_typer(taxonomy_app, name="taxonomy")
audiences_app.add_typer(feed_app, name="feed")
lookalike_app = typer.Typer(help="Lookalike audiences from a seed segment.", no_args_is_help=True)
audiences_app.add_typer(lookalike_app, name="lookalike")
campaign_app = typer.Typer(help="Campaign results per audience.", no_args_is_help=True)
audiences_app.add_typer(campaign_app, name="campaign")
signals_app = typer.Typer(help="Signal traits from page views and events.", no_args_is_help=True)
audiences_app.add_typer(signals_app, name="signals")
log_app = typer.Typer(help="The event log as files other engines read.", no_args_is_help=True)
app.add_typer(log_app, name="log")
spark_app = typer.Typer(
    help="Past one machine: identity, traits and segments on Apache Spark (docs/scale.md).",
    no_args_is_help=True,
)
app.add_typer(spark_app, name="spark")

# Into a pipe or a file, lines as long as their content: a table cut to 80 columns would
# fold or cut the ids that whoever reads the file needs whole.
out = Console(width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings() -> Settings:
    return Settings()


@contextmanager
def _backend() -> Iterator[Backend]:
    backend = open_backend(_settings())
    try:
        yield backend
    finally:
        backend.close()


def _print_json(value: Any) -> None:
    """A result (or plain values) as the JSON the API answers, indented."""
    sys.stdout.write(wire(value, orjson.OPT_INDENT_2).decode() + "\n")


Row = Result | dict[str, Any]


def _cell(row: Row, column: str) -> Text:
    """One cell: a result's attribute (or a plain row's key) as text, empty for None."""
    value = getattr(row, column) if isinstance(row, Result) else row.get(column)
    # Text, not markup: a query or a failure reason may hold "[true]" or "[/b]".
    return Text("" if value is None else str(value))


def _rows(rows: Sequence[Row], json: bool, columns: list[str]) -> None:
    """A command's rows: as JSON with --json, else a table of these columns."""
    _print_json(rows) if json else _table(rows, columns)


def _table(
    rows: Sequence[Row],
    columns: list[str],
    title: str | None = None,
    show_header: bool = True,
) -> None:
    table = Table(title=title, show_header=show_header)
    for column in columns:
        # Fold long values onto a second line rather than cut them with "…": an id or an
        # e-mail shown in part is a value lost to whoever copies it from the table.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row, c) for c in columns])
    out.print(table)


LimitOption = Annotated[int, typer.Option(min=1, help="How many to show.")]
AllOption = Annotated[
    bool, typer.Option("--all", help="Every one, page by page (with --json: JSON lines).")
]
CursorOption = Annotated[
    str | None, typer.Option(help="Start after this point: a next_cursor printed before.")
]
FetchPage = Callable[[int, str | None], Page]


def _pages(
    fetch: FetchPage, page_size: int, cursor: str | None, wanted: int | None
) -> Iterator[Page]:
    """The pages of a list from `cursor` on, until `wanted` rows (None: to the end)."""
    got = 0
    while True:
        size = page_size if wanted is None else min(page_size, wanted - got)
        page = fetch(size, cursor)
        got += len(page.items)
        yield page
        cursor = page.next_cursor
        if cursor is None or (wanted is not None and got >= wanted):
            return


def _listing(
    fetch: FetchPage,
    *,
    limit: int,
    every: bool,
    cursor: str | None,
    json: bool,
    columns: list[str],
    noun: str,
    page_size: int,
) -> None:
    """A list command: the first `limit` rows (in pages of at most `page_size`) with a
    note when more exist, or `--all` of them streamed page by page. The output is the
    same whether a server answers or the store itself."""
    if every:
        for number, page in enumerate(_pages(fetch, page_size, cursor, None)):
            if json:
                lines = b"".join(wire(item) + b"\n" for item in page.items)
                sys.stdout.write(lines.decode())
                sys.stdout.flush()
            elif page.items or number == 0:
                _table(page.items, columns, show_header=number == 0)
        return
    rows: list[dict[str, Any]] = []
    for page in _pages(fetch, page_size, cursor, limit):
        rows += page.items
    shown = Page(items=rows, total=page.total, limit=limit, next_cursor=page.next_cursor)
    _print_json(shown) if json else _table(rows, columns)
    if page.next_cursor is not None:
        err.print(
            f"showing {len(rows):,} of {page.total:,}; --all for every {noun} "
            f"(or --cursor {page.next_cursor} for the next {limit:,})"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the collect API, the admin API and the console."""
    from tessera.server import serve as run_server

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = Settings(**overrides)

    def ready() -> None:
        err.print(f"Tessera on http://{settings.host}:{settings.port}  (data: {settings.data_dir})")
        err.print(f"Admin token: {settings.admin_token_path} (or TESSERA_ADMIN_TOKEN)")

    run_server(settings, ready)


@sources_app.command("create")
def sources_create(
    name: Annotated[str, typer.Argument(help="Lower-case name, e.g. web-shop")],
    channel: Annotated[str, typer.Option(help=f"One of: {', '.join(CHANNELS)}")],
    json: JsonOption = False,
) -> None:
    """Create a source and print its write key (shown only now: keys are stored hashed)."""
    with _backend() as backend:
        created = backend.create_source(name, channel)
    if json:
        _print_json(created)
    else:
        out.print(f"Created source [bold]{created.name}[/] ({created.channel}), id {created.id}")
        out.print(f"Write key: [bold green]{created.write_key}[/]")
        out.print(
            "Keep it: it is stored hashed and cannot be shown again (rotate-key makes a new one)."
        )


@sources_app.command("list")
def sources_list(json: JsonOption = False) -> None:
    """List sources (write keys are shown by prefix only)."""
    with _backend() as backend:
        rows = backend.list_sources()
    _rows(rows, json, ["name", "channel", "id", "enabled", "write_key_prefix", "created_at"])


@sources_app.command("rotate-key")
def sources_rotate(name: str, json: JsonOption = False) -> None:
    """Give a source a new write key; the old one stops working at once."""
    with _backend() as backend:
        rotated = backend.rotate_key(name)
    if json:
        _print_json(rotated)
    else:
        out.print(f"New write key for {rotated.name}: [bold green]{rotated.write_key}[/]")


@sources_app.command("disable")
def sources_disable(name: str, json: JsonOption = False) -> None:
    """Refuse events for a source (403) until it is enabled again."""
    with _backend() as backend:
        source = backend.set_enabled(name, False)
    _print_json(source) if json else out.print(f"Disabled {source.name}.")


@sources_app.command("enable")
def sources_enable(name: str, json: JsonOption = False) -> None:
    """Accept events for a disabled source again."""
    with _backend() as backend:
        source = backend.set_enabled(name, True)
    _print_json(source) if json else out.print(f"Enabled {source.name}.")


@events_app.command("tail")
def events_tail(
    limit: LimitOption = 20,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    every: AllOption = False,
    cursor: CursorOption = None,
    json: JsonOption = False,
) -> None:
    """Show the newest events (--all: the whole log, newest first)."""
    with _backend() as backend:
        _listing(
            lambda size, after: backend.tail(size, source, after),
            limit=limit, every=every, cursor=cursor, json=json, noun="event", page_size=1000,
            columns=["seq", "type", "event", "user_id", "anonymous_id", "channel", "timestamp"],
        )  # fmt: skip


@events_app.command("rejected")
def events_rejected(
    limit: LimitOption = 50,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    every: AllOption = False,
    cursor: CursorOption = None,
    json: JsonOption = False,
) -> None:
    """Show dead-lettered messages and why they were refused, newest first."""
    with _backend() as backend:
        _listing(
            lambda size, after: backend.rejected(size, source, after),
            limit=limit, every=every, cursor=cursor, json=json, noun="rejected message",
            page_size=1000, columns=["id", "received_at", "code", "field", "reason", "message_id"],
        )  # fmt: skip


@events_app.command("failed")
def events_failed(
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    json: JsonOption = False,
) -> None:
    """Show events the pipeline set aside (they made it fail) and the error."""
    with _backend() as backend:
        rows = backend.failed(limit)
    _rows(rows, json, ["seq", "failed_at", "source", "type", "error_type", "error", "location"])


@events_app.command("replay-failed")
def events_replay_failed(json: JsonOption = False) -> None:
    """After a fix, process the set-aside events again (a rebuild, so each is processed
    in its place in the log); those that still fail are set aside again."""
    with _backend() as backend:
        result = backend.replay_failed()
    if json:
        _print_json(result)
    elif not result.replayed:
        out.print("No event is set aside; nothing to replay.")
    else:
        out.print(
            f"Replayed {result.replayed} events: {result.processed} processed, "
            f"{len(result.still_failing)} still failing "
            f"(rebuilt from {result.rebuild.events if result.rebuild else 0} events)."
        )


@app.command()
def stats(json: JsonOption = False) -> None:
    """Totals: events, rejected messages, sources, and what the pipeline could not use."""
    with _backend() as backend:
        figures = backend.stats()
    if json:
        _print_json(figures)
        return
    out.print(
        f"events {figures.events}   rejected {figures.rejected}   "
        f"sources {figures.sources}   last event {figures.last_event_at}"
    )
    out.print(
        f"pipeline: set aside {figures.pipeline_failed} events (tessera events failed)   "
        f"dropped identifiers {figures.dropped_identifiers}"
    )
    refresh = figures.refresh_failure
    if refresh:
        out.print(
            f"refresh of computed traits and segments failing ({refresh['attempts']} times in "
            f"a row, {refresh['error_type']}: {refresh['error']})",
            markup=False,
        )
    _table(figures.by_source, ["source", "channel", "events"])


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV, JSON lines or Parquet file.")],
    source: Annotated[str, typer.Option(help="Source name the rows belong to.")],
    mapping: Annotated[Path, typer.Option(help="Mapping YAML: which columns are what.")],
    json: JsonOption = False,
) -> None:
    """Import an offline file (CRM, POS, call centre...) as identify or track events."""
    if not mapping.exists():
        raise UnreadableFile(f"no mapping file at {mapping}", field="mapping", value=str(mapping))
    mapping_text = mapping.read_text()
    with (
        _backend() as backend,
        Progress(
            TextColumn("importing {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=json or not err.is_terminal,
        ) as bar,
    ):
        task = bar.add_task(file.name, total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        summary = backend.import_file(file, source, mapping_text, progress)
    if json:
        _print_json(summary)
        return
    out.print(
        f"{summary.rows} rows: {summary.accepted} imported, "
        f"{summary.duplicates} already there, {summary.rejected} rejected"
    )
    if summary.reject_file:
        out.print(f"Rejected rows and reasons: {summary.reject_file}")


@app.command()
def demo(
    people: Annotated[int, typer.Option(help="How many people the company has.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same company.")] = 42,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if events exist.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Generate a multichannel retailer and load it through the collect API and imports.

    Writes the offline files, their mappings and the ground truth (truth.csv,
    people.csv) to DATA_DIR/demo.
    """
    from datetime import UTC, datetime

    from tessera.backend import running_server
    from tessera.demo import generator, loader
    from tessera.privacy.keys import load_or_create_admin_token
    from tessera.server import background_server

    settings = _settings()
    if if_empty:
        with _backend() as backend:
            existing = backend.stats().events
        if existing:
            err.print(f"The store has {existing} events already; not loading the demo.")
            return
    err.print(f"Generating {people} people (seed {seed})...")
    now = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    company = generator.generate(people, seed, now)
    token = load_or_create_admin_token(settings.admin_token_path, settings.admin_token)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=json,
    ) as bar:
        tasks: dict[str, Any] = {}

        def report(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        url = running_server(settings)
        if url is not None:
            summary = loader.load(company, url, token, settings.data_dir / "demo", report)
        else:
            with background_server(settings) as url:
                summary = loader.load(company, url, token, settings.data_dir / "demo", report)
    if json:
        _print_json(summary)
        return
    out.print(
        f"Loaded {company.event_count} events for {people} people; "
        f"files and ground truth in {summary['folder']}"
    )


@app.command()
def process(json: JsonOption = False) -> None:
    """Run the pipeline over events not processed yet (`serve` does this continuously)."""
    with _backend() as backend:
        _print_run(backend.process(), "Processed", json)


@app.command()
def rebuild(json: JsonOption = False) -> None:
    """Recompute identity, profiles and computed traits from the whole event log."""
    with _backend() as backend:
        _print_run(backend.rebuild(), "Rebuilt from", json)


def _print_run(run: RunReport, verb: str, json: bool) -> None:
    if json:
        _print_json(run)
    else:
        out.print(
            f"{verb} {run.events} events in {run.seconds} s ({run.events_per_second} events/s)."
        )
        if run.failed:
            out.print(
                f"[red]{run.failed} events made the pipeline fail and were set aside:[/] "
                "see `tessera events failed`; after a fix, `tessera events replay-failed`."
            )


@profiles_app.command("show")
def profiles_show(
    reference: Annotated[str, typer.Argument(help="TYPE:VALUE (email:jane@x.com) or a profile id")],
    as_of: Annotated[str | None, typer.Option(help="A date: the profile as it stood then.")] = None,
    limit: Annotated[int, typer.Option(help="How many recent events.")] = 20,
    json: JsonOption = False,
) -> None:
    """The 360° view of one person."""
    with _backend() as backend:
        profile = backend.profile(reference, limit, as_of)
    if json:
        _print_json(profile)
        return
    title = f"[bold]{profile.profile_id}[/]" + (
        f" as of {profile.as_of}" if isinstance(profile, ProfileAsOf) else ""
    )
    out.print(title)
    out.print(
        f"seen {profile.first_seen} .. {profile.last_seen}, "
        f"{profile.event_count} events on {', '.join(profile.channels)}"
    )
    now = profile if isinstance(profile, ProfileView) else None
    if now and now.flagged:
        out.print(f"[red]flagged:[/] {now.flagged}")
    _table(profile.identifiers, ["type", "value"], "identifiers")
    if now and now.dropped_identifiers:
        _table(
            now.dropped_identifiers,
            ["type", "value", "reason", "seq"],
            "values that could not be identifiers",
        )
    _table(
        [{"trait": k, "value": v} for k, v in profile.traits.items()],
        ["trait", "value"],
        "traits",
    )
    if now and now.computed_traits:
        _table(
            [{"trait": k, "value": v} for k, v in now.computed_traits.items()],
            ["trait", "value"],
            "computed traits",
        )
    if profile.consent:
        out.print(f"consent: {profile.consent}")
    if now and now.events:
        _table(
            now.events["items"],
            ["seq", "timestamp", "channel", "type", "event", "name"],
            "events",
        )


@profiles_app.command("search")
def profiles_search(
    identifier: Annotated[str | None, typer.Option(help="Part of any identifier value.")] = None,
    trait: Annotated[str | None, typer.Option(help="KEY=VALUE, e.g. city=Paris")] = None,
    limit: LimitOption = 20,
    every: AllOption = False,
    cursor: CursorOption = None,
    json: JsonOption = False,
) -> None:
    """Find people by identifier fragment or by trait (by profile id)."""
    with _backend() as backend:
        _listing(
            lambda size, after: backend.search(identifier, trait, size, after),
            limit=limit, every=every, cursor=cursor, json=json, noun="match", page_size=200,
            columns=["profile_id", "name", "email", "event_count", "last_seen"],
        )  # fmt: skip


@profiles_app.command("explain")
def profiles_explain(
    first: Annotated[str, typer.Argument(help="TYPE:VALUE")],
    second: Annotated[str, typer.Argument(help="TYPE:VALUE")],
    json: JsonOption = False,
) -> None:
    """Why two identifiers belong to one person: the chain of links and their events."""
    with _backend() as backend:
        answer = backend.explain(first, second)
    if json:
        _print_json(answer)
    elif not answer.same_profile:
        out.print(
            f"{answer.first} ({answer.first_profile}) and {answer.second} "
            f"({answer.second_profile}) are different people."
        )
    else:
        out.print(f"{answer.first} and {answer.second} are one person ({answer.first_profile}):")
        _table(answer.chain, ["from", "to", "kind", "because", "timestamp", "message_id"])
    if not json:
        profile_of = {"first": answer.first_profile, "second": answer.second_profile}
        for side in ("first", "second"):
            dropped = answer.dropped_identifiers.get(side) or []
            if dropped and (side == "first" or not answer.same_profile):
                _table(
                    dropped,
                    ["type", "value", "reason", "seq"],
                    f"values {profile_of[side]} sent that could not be identifiers",
                )


@profiles_app.command("unmerge")
def profiles_unmerge(
    first: Annotated[str, typer.Argument(help="TYPE:VALUE")],
    second: Annotated[str, typer.Argument(help="TYPE:VALUE")],
    reason: Annotated[str | None, typer.Option(help="Why, for the ledger.")] = None,
    json: JsonOption = False,
) -> None:
    """Separate two identifiers wrongly joined; events and traits move back (a rebuild)."""
    with _backend() as backend:
        result = backend.unmerge(first, second, reason)
    _print_json(result) if json else out.print(
        f"{result.first} is now in {result.first_profile}, {result.second} in "
        f"{result.second_profile} (rebuilt {result.rebuild['events']} events)."
    )


@traits_app.command("list")
def traits_list(json: JsonOption = False) -> None:
    """Computed trait definitions: built in, from the YAML file, and defined here."""
    with _backend() as backend:
        rows = backend.computed_traits()
    _rows(rows, json, ["name", "function", "event", "property", "where", "window_days"])


@traits_app.command("create")
def traits_create(
    file: Annotated[Path, typer.Argument(help="YAML: one definition or a list of them.")],
    json: JsonOption = False,
) -> None:
    """Define computed traits; they are computed for everyone at once."""
    import yaml

    document = yaml.safe_load(file.read_text())
    items = document if isinstance(document, list) else [document]
    with _backend() as backend:
        created = [backend.define_trait(item) for item in items]
    _print_json(created) if json else out.print(f"Defined {', '.join(t.name for t in created)}.")


@traits_app.command("delete")
def traits_delete(name: str) -> None:
    """Remove a computed trait defined with `tessera traits create` or the API."""
    with _backend() as backend:
        backend.delete_trait(name)
    out.print(f"Deleted {name}.")


QueryOption = Annotated[str, typer.Option("--query", help="The segment, in the segment language.")]


@segments_app.command("create")
def segments_create(name: str, query: QueryOption, json: JsonOption = False) -> None:
    """Create a segment; it is evaluated over the whole history at once."""
    with _backend() as backend:
        segment = backend.create_segment(name, query)
    _print_json(segment) if json else out.print(
        f"{segment.name}: {segment.size} members. {segment.description}", markup=False
    )


@segments_app.command("update")
def segments_update(name: str, query: QueryOption, json: JsonOption = False) -> None:
    """Change a segment's query (checked and run first); its members follow at once."""
    with _backend() as backend:
        segment = backend.update_segment(name, query)
    _print_json(segment) if json else out.print(
        f"{segment.name}: {segment.size} members. {segment.description}", markup=False
    )


@segments_app.command("preview")
def segments_preview(query: QueryOption, json: JsonOption = False) -> None:
    """Size, a sample and the description of a query, without saving it."""
    with _backend() as backend:
        result = backend.preview_segment(query)
    if json:
        _print_json(result)
    else:
        out.print(f"{result.size} profiles: {result.description}", markup=False)
        out.print("sample: " + ", ".join(result.sample), markup=False)


@segments_app.command("list")
def segments_list(json: JsonOption = False) -> None:
    """Segments with their sizes and status: ok, or failed with the reason."""
    with _backend() as backend:
        rows = backend.list_segments()
    _rows(rows, json, ["name", "status", "size", "description", "evaluated_at", "failure"])


@segments_app.command("show")
def segments_show(name: str, json: JsonOption = False) -> None:
    """A segment's definition, description and size."""
    with _backend() as backend:
        segment = backend.show_segment(name)
    failure = f"\n  FAILED: {segment.failure}" if segment.failure else ""
    _print_json(segment) if json else out.print(
        f"{segment.name} ({segment.size} members)\n  {segment.query}\n"
        f"  {segment.description}{failure}",
        markup=False,
    )


@segments_app.command("delete")
def segments_delete(name: str) -> None:
    """Delete a segment and its membership history."""
    with _backend() as backend:
        backend.delete_segment(name)
    out.print(f"Deleted {name}.")


@segments_app.command("members")
def segments_members(
    name: str,
    limit: LimitOption = 100,
    every: AllOption = False,
    cursor: CursorOption = None,
    json: JsonOption = False,
) -> None:
    """Current members by profile id, with their user id, e-mail, anonymous id and phone."""
    with _backend() as backend:
        _listing(
            lambda size, after: backend.segment_members(name, size, after),
            limit=limit, every=every, cursor=cursor, json=json, noun="member", page_size=1000,
            columns=["profile_id", "user_id", "email", "anonymous_id", "phone", "entered_at"],
        )  # fmt: skip


@segments_app.command("history")
def segments_history(name: str, json: JsonOption = False) -> None:
    """Size per day, from who entered and who left."""
    with _backend() as backend:
        result = backend.segment_history(name)
    _print_json(result) if json else _table(result.days, ["day", "change", "size"])


@segments_app.command("why")
def segments_why(
    name: str,
    reference: Annotated[str, typer.Argument(help="TYPE:VALUE")],
    json: JsonOption = False,
) -> None:
    """Which conditions of a segment hold for one person, and which do not."""
    with _backend() as backend:
        result = backend.segment_why(name, reference)
    if json:
        _print_json(result)
        return

    def show(node: Why | Condition, depth: int) -> None:
        mark = "[green]yes[/]" if node.holds else "[red]no [/]"
        out.print(f"{'  ' * depth}{mark} {escape(node.condition)}")
        for part in node.parts or []:
            show(part, depth + 1)

    show(result, 0)


@segments_app.command("overlap")
def segments_overlap(json: JsonOption = False) -> None:
    """How many people each pair of segments shares."""
    with _backend() as backend:
        rows = backend.segment_overlap()
    _rows(rows, json, ["first", "second", "both_count"])


@audiences_app.command("export")
def audiences_export(
    segment: str,
    file_format: Annotated[
        str,
        typer.Option(
            "--format", help="google (contact info), google-mobile (ad ids), meta or openrtb."
        ),
    ],
    target: Annotated[Path, typer.Option("--out", help="The file to write.")],
    holdout: Annotated[
        str | None,
        typer.Option(help="Hold this share out first (e.g. 10%), to measure lift later."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Write a segment's members as a file for an ad platform (consent permitting)."""
    with _backend() as backend:
        if holdout:
            backend.holdout(segment, _share(holdout))
        summary = backend.export_audience(segment, file_format, target)
    if json:
        _print_json(summary)
        return
    out.print(
        f"{summary.rows} rows to {target}: {summary.exported_profiles} of "
        f"{summary.members} members ({summary.refused_consent} without advertising "
        f"consent, {summary.held_out} held out, {summary.without_identifier} without "
        "an identifier this format uses)."
    )
    if summary.refused_advertising_ids:
        out.print(
            f"{summary.refused_advertising_ids} advertising ids left out: not IDFA/GAID "
            "(a UUID such as 6d92078a-8246-4ba4-ae5b-76104861e7dc)."
        )


@taxonomy_app.command("load")
def taxonomy_load(
    file: Annotated[Path, typer.Argument(help="An IAB Tech Lab taxonomy, tab-separated.")],
    name: Annotated[
        str | None, typer.Option(help="Its name (default from the file: iab-audience...).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Load (or replace) a taxonomy; bad rows go to a reject file with the reason."""
    with _backend() as backend:
        result = backend.load_taxonomy(file, name)
    if json:
        _print_json(result)
        return
    out.print(f"{result.taxonomy}: {result.nodes} nodes, {result.rejected} rejected")
    if result.reject_file:
        out.print(f"Rejected rows and reasons: {result.reject_file}")


@taxonomy_app.command("list")
def taxonomy_list(json: JsonOption = False) -> None:
    """Loaded taxonomies."""
    with _backend() as backend:
        rows = backend.list_taxonomies()
    _rows(rows, json, ["taxonomy", "nodes", "tiers"])


@taxonomy_app.command("show")
def taxonomy_show(
    name: Annotated[str, typer.Argument(help="Taxonomy name.")] = "iab-audience",
    parent: Annotated[str | None, typer.Option(help="Children of this node id.")] = None,
    search: Annotated[str | None, typer.Option(help="Nodes whose path contains this.")] = None,
    json: JsonOption = False,
) -> None:
    """Browse a taxonomy: its top tier, a node's children, or a search."""
    with _backend() as backend:
        rows = backend.browse_taxonomy(name, parent, search)
    _rows(rows, json, ["id", "path", "children", "members"])


@feed_app.command("import")
def feed_import(
    file: Annotated[Path, typer.Argument(help="CSV or JSON lines: id → segment ids.")],
    provider: Annotated[str, typer.Option(help="The data provider's name.")],
    taxonomy: Annotated[str, typer.Option(help="Taxonomy of the segment ids.")] = "iab-audience",
    cpm: Annotated[float | None, typer.Option(help="Price per thousand, if not per row.")] = None,
    lifetime_days: Annotated[int, typer.Option(help="Days a membership lasts.")] = 90,
    restrictions: Annotated[
        str | None, typer.Option(help="Use restrictions, e.g. 'no health targeting'.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Import a third-party feed: who is in which provider segment, with price and lifetime."""
    with _backend() as backend:
        options = FeedOptions(provider, taxonomy, cpm, lifetime_days, restrictions)
        result = backend.import_feed(file, options)
    if json:
        _print_json(result)
        return
    out.print(
        f"{result.rows} rows: {result.accepted} accepted ({result.memberships} "
        f"memberships in {result.segments} segments), {result.rejected} rejected"
    )
    if result.reject_file:
        out.print(f"Rejected rows and reasons: {result.reject_file}")


@audiences_app.command("third-party")
def third_party(json: JsonOption = False) -> None:
    """Third-party segments: provider, price, lifetime, restrictions, members."""
    with _backend() as backend:
        rows = backend.third_party()
    columns = ["provider", "segment_id", "path", "cpm", "lifetime_days", "restrictions", "members"]
    _rows(rows, json, columns)


@lookalike_app.command("create")
def lookalike_create(
    name: str,
    seed: Annotated[str, typer.Option(help="The seed segment.")],
    reach: Annotated[int | None, typer.Option(help="How many profiles to keep.")] = None,
    accuracy: Annotated[
        float | None, typer.Option(help="Or: the held-out recall to reach, 0-1.")
    ] = None,
    method: Annotated[str, typer.Option(help="weights (v1) or classifier (v2).")] = "weights",
    population: Annotated[str, typer.Option(help="all, anonymous or known.")] = "all",
    json: JsonOption = False,
) -> None:
    """Build a lookalike audience (and a segment NAME) from a seed segment."""
    with _backend() as backend:
        request = LookalikeRequest(name, seed, reach, accuracy, method, population)
        result = backend.create_lookalike(request)
    _print_json(result) if json else _show_lookalike(result)


@lookalike_app.command("show")
def lookalike_show(name: str, json: JsonOption = False) -> None:
    """A lookalike's weights, reach-accuracy curve and held-out evaluation."""
    with _backend() as backend:
        result = backend.show_lookalike(name)
    _print_json(result) if json else _show_lookalike(result)


@lookalike_app.command("reach")
def lookalike_reach(name: str, reach: int, json: JsonOption = False) -> None:
    """Keep this many of the ranked profiles (pick from the reach-accuracy curve)."""
    with _backend() as backend:
        result = backend.set_lookalike_reach(name, reach)
    _print_json(result) if json else out.print(f"{name}: reach {result.reach} profiles.")


@lookalike_app.command("scores")
def lookalike_scores(
    name: str,
    limit: Annotated[int, typer.Option(help="How many, best first.")] = 20,
    json: JsonOption = False,
) -> None:
    """The best-scored profiles with their rank and whether the audience keeps them."""
    with _backend() as backend:
        # One more than asked: whether the list goes on, so a cut list says so.
        rows = backend.lookalike_scores(name, limit + 1)
    shown = rows[:limit]
    _rows(shown, json, ["rank", "profile_id", "score", "in_audience"])
    if len(rows) > limit:
        err.print(
            f"showing {len(shown):,} of more than {len(shown):,} ranked profiles; "
            f"--limit {limit * 10:,} for more"
        )


@lookalike_app.command("list")
def lookalike_list(json: JsonOption = False) -> None:
    """Lookalike audiences."""
    with _backend() as backend:
        rows = backend.list_lookalikes()
    _rows(rows, json, ["name", "seed", "method", "population", "reach"])


def _show_lookalike(result: Lookalike) -> None:
    out.print(
        f"{result.name}: {result.reach} profiles like the {result.seed_size} of "
        f"{result.seed!r} ({result.method}, population {result.population}, "
        f"{result.profiles_scored} profiles scored on {result.features} features)"
    )
    _table(result.weights[:10], list(result.weights[0]) if result.weights else [],
           title="What weighs most")  # fmt: skip
    evaluation = result.evaluation
    title = f"Reach and accuracy ({evaluation['held_out']} seed members held out)"
    _table(evaluation["curve"], ["reach", "reach_share", "recall", "lift"], title=title)


@audiences_app.command("holdout")
def audiences_holdout(
    segment: str,
    share: Annotated[str, typer.Option(help="Share held out of exports: 10% or 0.1.")],
    json: JsonOption = False,
) -> None:
    """Keep a random, stable share of an audience out of its exports, to measure lift."""
    with _backend() as backend:
        result = backend.holdout(segment, _share(share))
    _print_json(result) if json else out.print(
        f"{result.audience}: {result.held_out} of {result.members} members held out "
        f"({result.share:.0%}); exports leave them out from now on."
    )


@campaign_app.command("import")
def campaign_import(file: Path, json: JsonOption = False) -> None:
    """Import delivery and results: campaign, day, audience, impressions, clicks,
    conversions, cost[, reach]."""
    with _backend() as backend:
        result = backend.import_campaign_results(file)
    _print_import(result, json)


@campaign_app.command("conversions")
def campaign_conversions(file: Path, json: JsonOption = False) -> None:
    """Import conversions with an identifier (email, phone, user_id, cookie_id...)."""
    with _backend() as backend:
        result = backend.import_campaign_conversions(file)
    _print_import(result, json)


@campaign_app.command("report")
def campaign_report(
    campaign: Annotated[str | None, typer.Option(help="One campaign only.")] = None,
    event: Annotated[str, typer.Option(help="The conversion event, for lift.")] = "Order Completed",
    json: JsonOption = False,
) -> None:
    """Reach, frequency, CTR, conversion rate, CPA per campaign and audience, and lift."""
    with _backend() as backend:
        rows = backend.campaign_report(campaign, event)
    if json:
        _print_json(rows)
        return
    columns = ["campaign", "audience", "impressions", "reach", "frequency", "ctr",
               "conversion_rate", "cpa", "converted_profiles"]  # fmt: skip
    shown = [
        {**{column: getattr(row, column) for column in columns}, "lift": _lift_text(row.lift)}
        for row in rows
    ]
    _table(shown, [*columns, "lift"])


def _lift_text(lift: dict[str, Any] | None) -> str:
    return "" if not lift or lift["lift"] is None else f"{lift['lift']:+.1%}"


def _share(text: str) -> float:
    """'10%' or '0.1' → 0.1."""
    cleaned = text.strip()
    try:
        return float(cleaned.rstrip("%")) / (100 if cleaned.endswith("%") else 1)
    except ValueError:
        raise InvalidField(
            f"share {text!r} must look like 10% or 0.1", field="share", value=text
        ) from None


def _print_import(result: CampaignImport, json: bool) -> None:
    if json:
        _print_json(result)
        return
    out.print(f"{result.rows} rows: {result.accepted} imported, {result.rejected} rejected")
    if result.reject_file:
        out.print(f"Rejected rows and reasons: {result.reject_file}")


@signals_app.command("load")
def signals_load(file: Path, json: JsonOption = False) -> None:
    """Replace the signal traits and page categories with a YAML file's."""
    import yaml

    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UnreadableFile(f"cannot read {file}: {e}", field="file", value=str(file)) from None
    with _backend() as backend:
        result = backend.load_signals(document)
    _print_json(result) if json else out.print(
        f"{result.signals} signal traits and {result.categories} page categories loaded; "
        "traits computed."
    )


@signals_app.command("list")
def signals_list(json: JsonOption = False) -> None:
    """Signal traits and page categories."""
    with _backend() as backend:
        result = backend.show_signals()
    if json:
        _print_json(result)
        return
    rows = [{"name": d["name"], "when": d["when"], "lifetime_days": d["lifetime_days"]}
            for d in result.signals]  # fmt: skip
    _table(rows, ["name", "when", "lifetime_days"], title="Signal traits")
    _table(result.categories, ["prefix", "category_id", "path"], title="Page categories")


@audiences_app.command("purge")
def audiences_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
    json: JsonOption = False,
) -> None:
    """Purge anonymous profiles not seen for their lifetime, with their events."""
    with _backend() as backend:
        result = backend.purge_anonymous(dry_run)
    if json:
        _print_json(result)
        return
    verb = "would purge" if dry_run else "purged"
    out.print(f"{verb} {result.profiles} anonymous profiles and {result.events} events.")


# -- destinations (issue 13) -------------------------------------------------------------

destinations_app = typer.Typer(
    help="Destinations: where events and audiences go (webhook, segment, files, ad platforms).",
    no_args_is_help=True,
)
app.add_typer(destinations_app, name="destinations")


@destinations_app.command("create")
def destinations_create(
    name: Annotated[str, typer.Argument(help="e.g. crm-webhook")],
    kind: Annotated[
        str,
        typer.Option(help="webhook, segment, files, google_customer_match, meta_custom_audiences"),
    ],
    purpose: Annotated[
        str,
        typer.Option(
            help="analytics, personalisation, email or advertising (checked against consent)"
        ),
    ] = "analytics",
    url: Annotated[str | None, typer.Option(help="webhook / segment / ad platform API URL")] = None,
    header: Annotated[list[str] | None, typer.Option(help="NAME:VALUE, repeatable")] = None,
    write_key: Annotated[str | None, typer.Option(help="segment: the receiver's write key")] = None,
    directory: Annotated[str | None, typer.Option(help="files: a folder (or fsspec URL)")] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="files: jsonl or parquet")
    ] = None,
    roll_bytes: Annotated[int | None, typer.Option(help="files: roll past this size")] = None,
    roll_seconds: Annotated[float | None, typer.Option(help="files: roll past this age")] = None,
    account: Annotated[str | None, typer.Option(help="ad platform: customer id")] = None,
    audience_id: Annotated[str | None, typer.Option(help="ad platform: user list id")] = None,
    access_token: Annotated[str | None, typer.Option(help="ad platform: API token")] = None,
    source: Annotated[list[str] | None, typer.Option(help="only this source; repeatable")] = None,
    event: Annotated[
        list[str] | None, typer.Option(help="only this track event; repeatable")
    ] = None,
    message_type: Annotated[list[str] | None, typer.Option("--type", help="only this type")] = None,
    condition: Annotated[str | None, typer.Option(help="JMESPath over the message")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML/JSON list of mapping steps")] = None,
    segment: Annotated[list[str] | None, typer.Option(help="sync this segment; repeatable")] = None,
    identifier: Annotated[list[str] | None, typer.Option(help="identifier types to send")] = None,
    no_events: Annotated[bool, typer.Option("--no-events", help="audiences only")] = False,
    batch_size: Annotated[int | None, typer.Option(help="messages per request")] = None,
    linger: Annotated[float | None, typer.Option(help="seconds to wait for a batch")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds per request")] = None,
    retry_hours: Annotated[float | None, typer.Option(help="retry window (default 4)")] = None,
    concurrency: Annotated[int | None, typer.Option(help="requests in flight")] = None,
    rate: Annotated[float | None, typer.Option(help="most requests per second")] = None,
    ordered: Annotated[bool, typer.Option("--ordered", help="keep each user's order")] = False,
    json: JsonOption = False,
) -> None:
    """Create a destination; a webhook's signing secret is printed once."""
    given: dict[str, Any] = {
        "url": url, "write_key": write_key, "directory": directory, "file_format": file_format,
        "roll_bytes": roll_bytes, "roll_seconds": roll_seconds, "account": account,
        "audience_id": audience_id, "access_token": access_token, "sources": source,
        "event_names": event, "types": message_type, "condition": condition,
        "segments": segment, "identifiers": identifier, "batch_size": batch_size,
        "linger_seconds": linger, "timeout_seconds": timeout, "retry_hours": retry_hours,
        "concurrency": concurrency, "max_requests_per_second": rate,
    }  # fmt: skip
    options = {key: value for key, value in given.items() if value not in (None, [])}
    if header:
        options["headers"] = dict(_header(h) for h in header)
    if mapping is not None:
        options["mapping"] = _mapping_file(mapping)
    if no_events:
        options["events"] = False
    if ordered:
        options["ordered"] = True
    with _backend() as backend:
        created = backend.create_destination(DestinationRequest(name, kind, purpose, options))
    if json:
        _print_json(created)
        return
    out.print(f"Created destination [bold]{created.name}[/] ({created.kind}, "
              f"purpose {created.purpose}); it receives what arrives from now on.")  # fmt: skip
    if created.secret:
        out.print(f"Signing secret: [bold green]{created.secret}[/]")
        out.print("Keep it: it is shown only now (rotate-secret makes a new one).")


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise InvalidField(f"header {text!r} must be NAME:VALUE", field="header", value=text)
    return name.strip(), value.strip()


def _mapping_file(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UnreadableFile(f"cannot read the mapping {path}: {e}") from e


@destinations_app.command("list")
def destinations_list(json: JsonOption = False) -> None:
    """List destinations."""
    with _backend() as backend:
        rows = backend.list_destinations()
    _rows(rows, json, ["name", "kind", "purpose", "enabled", "created_at"])


@destinations_app.command("show")
def destinations_show(name: str, json: JsonOption = False) -> None:
    """One destination and its options (credentials masked)."""
    with _backend() as backend:
        shown = backend.show_destination(name)
    if json:
        _print_json(shown)
        return
    fields = shown.model_dump()
    options = fields.pop("options")
    _table([{"option": k, "value": v} for k, v in (fields | options).items()],
           ["option", "value"], title=name)  # fmt: skip


@destinations_app.command("disable")
def destinations_disable(name: str, json: JsonOption = False) -> None:
    """Stop delivering to a destination (its position is kept)."""
    with _backend() as backend:
        shown = backend.set_destination_enabled(name, False)
    _print_json(shown) if json else out.print(f"Disabled {shown.name}.")


@destinations_app.command("enable")
def destinations_enable(name: str, json: JsonOption = False) -> None:
    """Deliver to a disabled destination again, from where it stopped."""
    with _backend() as backend:
        shown = backend.set_destination_enabled(name, True)
    _print_json(shown) if json else out.print(f"Enabled {shown.name}.")


@destinations_app.command("delete")
def destinations_delete(name: str, json: JsonOption = False) -> None:
    """Delete a destination with its position, dead letters and delivery log."""
    with _backend() as backend:
        deleted = backend.delete_destination(name)
    _print_json(deleted) if json else out.print(f"Deleted {deleted.name}.")


@destinations_app.command("rotate-secret")
def destinations_rotate_secret(name: str, json: JsonOption = False) -> None:
    """Give a webhook a new signing secret; the old one stops at once."""
    with _backend() as backend:
        rotated = backend.rotate_destination_secret(name)
    if json:
        _print_json(rotated)
    else:
        out.print(f"New signing secret for {rotated.name}: [bold green]{rotated.secret}[/]")


@destinations_app.command("deliveries")
def destinations_deliveries(
    name: str,
    minutes: Annotated[int, typer.Option(min=1, help="How far back")] = 60,
    json: JsonOption = False,
) -> None:
    """The delivery log: per minute delivered / retried / failed / suppressed / dead-lettered,
    latency percentiles, and the last errors."""
    with _backend() as backend:
        report = backend.destination_deliveries(name, minutes)
    if json:
        _print_json(report)
        return
    out.print(f"{name}: position {report.position} of {report.log_end}, "
              f"{report.dead_letters} dead letters; totals {report.totals}")  # fmt: skip
    _table(report.minutes, ["minute", "delivered", "retried", "failed", "suppressed",
                            "dead_lettered", "p50_ms", "p95_ms", "p99_ms"])  # fmt: skip
    if report.last_errors:
        _table(report.last_errors, ["at", "status", "error", "body"], title="last errors")


@destinations_app.command("dead-letters")
def destinations_dead_letters(
    name: str, limit: LimitOption = 100, json: JsonOption = False
) -> None:
    """Messages the destination refused, or that were not delivered within its retry window."""
    with _backend() as backend:
        rows = backend.destination_dead_letters(name, limit)
    _rows(rows, json, ["id", "failed_at", "message_id", "status", "reason"])


@destinations_app.command("replay")
def destinations_replay(
    name: str,
    dead_letters: Annotated[bool, typer.Option("--dead-letters", help="send them again")] = False,
    since: Annotated[
        str | None, typer.Option(help="ISO time: send events since then again")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Send a destination's dead letters again, or every event received since a time."""
    moment = _moment(since) if since else None
    with _backend() as backend:
        result = backend.replay_destination(name, dead_letters, moment)
    if json:
        _print_json(result)
    else:
        out.print(f"{name}: {result.dead_letters_queued} dead letters queued"
                  + (f", position moved back to {result.position}"
                     if result.position is not None else ""))  # fmt: skip


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidField(
            f"--since {text!r} is not an ISO 8601 time (e.g. 2026-11-30T12:00:00Z)",
            field="since", value=text,
        ) from e  # fmt: skip
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@log_app.command("export")
def log_export(
    to: Annotated[str, typer.Option("--to", help="A directory, or an s3:// gs:// ... URL.")],
    json: JsonOption = False,
) -> None:
    """Export the events table (and the inputs) as partitioned Parquet: incremental,
    resumable, idempotent, with a table of contents (docs/scale.md). Reads the store
    directly: stop `tessera serve` first."""
    from tessera.events import export
    from tessera.store import open_store

    store = open_store(_settings().database_path)
    try:
        result = export.export(store, to)
    finally:
        store.close()
    if json:
        _print_json(result)
        return
    out.print(
        f"Exported {result.events} events (seq {result.from_seq + 1}..{result.to_seq}) in "
        f"{len(result.files)} files to {result.to}; inputs: "
        + ", ".join(f"{k} {v}" for k, v in result.inputs.items())
    )


@spark_app.command("run")
def spark_run(
    input_dir: Annotated[str, typer.Option("--input", help="What `tessera log export` wrote.")],
    output_dir: Annotated[str, typer.Option("--output", help="Where the tables go.")],
    master: Annotated[
        str, typer.Option("--master", help="Spark master: local[N], spark://..., yarn.")
    ] = "local[2]",
    now: Annotated[
        str | None, typer.Option("--now", help="The clock (ISO time); default: now.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Compute identity, profiles, computed traits and segments on Spark."""
    from tessera.spark.run import run
    from tessera.spark.session import session

    moment = datetime.fromisoformat(now) if now else None
    spark = session(master)
    try:
        result = run(spark, input_dir, output_dir, _settings(), now=moment)
    finally:
        spark.stop()
    if json:
        _print_json(result)
        return
    out.print(
        f"{result.events} events, {result.profiles} profiles, {result.identities} "
        f"identifiers, {result.computed_traits} computed trait values, "
        f"{len(result.segments_evaluated)} segments in {result.seconds} s -> {output_dir}"
    )
    for failed in [*result.failed_traits, *result.failed_segments]:
        err.print(f"[yellow]not computed[/] {escape(failed.name)}: {escape(failed.reason)}")


@spark_app.command("load")
def spark_load(
    directory: Annotated[str, typer.Argument(help="What `tessera spark run` wrote.")],
    json: JsonOption = False,
) -> None:
    """Load Spark's results into the serving store (stop `tessera serve` first)."""
    from tessera.spark.load import load
    from tessera.store import open_store

    store = open_store(_settings().database_path)
    try:
        result = load(store, directory)
    finally:
        store.close()
    if json:
        _print_json(result)
        return
    out.print(
        f"Loaded {result.rows.get('profile_summaries', 0)} profiles, "
        f"{result.rows.get('computed_traits', 0)} computed trait values and "
        f"{len(result.segments)} segments' members; the pipeline continues after seq "
        f"{result.processed_seq}."
    )


def main() -> None:
    code = 0
    # Whatever the CLI writes (the data directory, demo files, exports with --out) holds
    # customer data: owner-only from the start, as open_store makes it for the server too.
    os.umask(PRIVATE_UMASK)
    try:
        app()
    except TesseraError as error:
        # The message may quote user text ("[/b]" in a segment query): never markup.
        err.print(f"[red]error[/] ({error.code}): {escape(error.message)}")
        code = 1
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            err.print(done.code)
    _leave(code)


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown. Everything is written and closed by now
    (the store checkpoints on close); but tearing down DuckDB's and pyarrow's native
    objects during interpreter finalization aborted `tessera demo` now and then under load
    ("terminate called ... exception not rethrown", seen in 2 of ~12 full test runs and
    never on its own), after its work and output were complete. Skipping the teardown
    removes that failure; the root cause is still open (see the stop-8 note)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
