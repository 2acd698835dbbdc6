"""The event log as files Spark reads: partitioned Parquet with a table of contents.

`export(store, to)` writes the **events table** (the normalised, deduplicated events the
pipeline reads; not the raw log segments) as Parquet partitioned by day and source, plus
the inputs the heavy work needs beside it (sources, identity blocks, trait definitions,
segments, third-party feeds, campaign results, the product catalogue when there is one):

    DIR/toc.json                                  what each file holds (below)
    DIR/events/day=2026-03-01/source_id=src_1/part-00003-00000-0.parquet
    DIR/inputs/sources.parquet, inputs/segments.parquet, ...

- **Incremental**: a run exports the events after the last exported seq, up to the last
  seq at its start; the toc records that seq.
- **Resumable and idempotent**: a run's files are named by its run number (then by the
  range of a million seqs they came from), and the toc is replaced (atomically, on a local
  disk) only after every file is written. A run that dies leaves files the toc does not
  list; the next run has the same number, removes them and writes its own. A run with
  nothing new writes no event file.
- **Bounded memory**: the events stream from DuckDB a million seqs at a time, so an export
  holds about that many events in memory whatever the log's size.
- `to` is a directory or a URL pyarrow's filesystems open (`s3://`, `gs://`, `abfs://`
  with the cloud's credentials in the environment, as pyarrow reads them).

Inputs are small and written whole on every run (a feed re-imported replaces its rows).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tessera.errors import InvalidField
from tessera.events.timestamps import iso_utc, utc_now
from tessera.results import Result
from tessera.store import Store

TOC = "toc.json"
FORMAT = 1
#: rows per Parquet file at most (row groups stay small enough to split for Spark)
MAX_ROWS_PER_FILE = 2_000_000
#: events written per call of the dataset writer (by seq): what one export holds in memory
SEQS_PER_CHUNK = 1_000_000
#: No ORDER BY: a sort holds the whole result before its first row (1M events read: 1.9 GB
#: sorted against 0.8 GB streamed);
#: a plain scan streams, in the table's order (seq, as loaded), and Spark sorts by seq
#: where order matters.
_EVENTS_SQL = """
SELECT e.*, strftime(e.timestamp, '%Y-%m-%d') AS day
FROM events e WHERE e.seq > $after AND e.seq <= $until
"""
#: the inputs beside the events: table name -> query (fixed text, no values)
INPUTS: dict[str, str] = {
    "sources": "SELECT id, name, channel FROM sources",
    "identity_blocks": "SELECT first, second FROM identity_blocks",
    "pipeline_failures": "SELECT seq FROM pipeline_failures",
    "computed_trait_definitions": "SELECT name, definition FROM computed_trait_definitions",
    "segments": "SELECT id, name, query, tree FROM segments",
    "third_party_segments": "SELECT * FROM third_party_segments",
    "third_party_memberships": "SELECT * FROM third_party_memberships",
    "taxonomy_nodes": "SELECT * FROM taxonomy_nodes",
    "taxonomy_closure": "SELECT * FROM taxonomy_closure",
    "campaign_results": "SELECT * FROM campaign_results",
    "campaign_conversions": "SELECT * FROM campaign_conversions",
    "lookalikes": "SELECT * FROM lookalikes",
    # What `in segment` and `in lookalike` read: the open stays and the scored members.
    "segment_members": "SELECT * FROM segment_members WHERE left_at IS NULL",
    "lookalike_members": "SELECT * FROM lookalike_members",
    # Who an audience export holds out (`audiences/campaigns.py`): Spark's exports too.
    "audience_holdouts": "SELECT audience, share, salt FROM audience_holdouts",
    # Added by the catalogue work; exported when the store has it.
    "products": "SELECT * FROM products",
    # What loyalty points and tiers are derived by (`profiles/loyalty.py`): Spark's too.
    "loyalty_rules": "SELECT name, document FROM loyalty_rules",
}


class ExportedFile(Result):
    path: str
    day: str
    source_id: str
    rows: int
    min_seq: int
    max_seq: int


class LogExport(Result):
    """What one `tessera log export` did, and where the toc stands after it."""

    to: str
    run: int
    from_seq: int
    to_seq: int
    events: int
    files: list[ExportedFile]
    inputs: dict[str, int]
    exported_at: str


@dataclass(frozen=True)
class _Target:
    filesystem: pafs.FileSystem
    root: str
    local: bool

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])


def _target(to: str) -> _Target:
    try:
        filesystem, root = pafs.FileSystem.from_uri(to)
    except (pa.ArrowInvalid, ValueError):
        filesystem, root = pafs.LocalFileSystem(), os.path.abspath(to)
    except OSError as e:
        raise InvalidField(f"cannot open export target {to!r}: {e}", field="to", value=to) from e
    return _Target(filesystem, root, isinstance(filesystem, pafs.LocalFileSystem))


def read_toc(to: str) -> dict[str, Any]:
    """The table of contents at `to`, or an empty one."""
    target = _target(to)
    info = target.filesystem.get_file_info(target.path(TOC))
    if info.type != pafs.FileType.File:
        return {"format": FORMAT, "exported_seq": 0, "runs": [], "inputs": {}}
    with target.filesystem.open_input_stream(target.path(TOC)) as stream:
        toc: dict[str, Any] = orjson.loads(stream.read())
    if toc.get("format") != FORMAT:
        raise InvalidField(
            f"{to}/{TOC} has format {toc.get('format')!r}; this Tessera writes format {FORMAT}",
            field="to",
            value=to,
        )
    return toc


def export(store: Store, to: str) -> LogExport:
    """Export the events after the last exported seq, and every input, to `to`.

    Raises:
        InvalidField: `to` cannot be opened, or holds a toc of another format.
    """
    target = _target(to)
    toc = read_toc(to)
    after = int(toc["exported_seq"])
    run = len(toc["runs"]) + 1
    target.filesystem.create_dir(target.root, recursive=True)
    _remove_unlisted(target, run)
    row = store.fetch_one("SELECT coalesce(max(seq), 0) FROM events")
    until = max(int(row[0]) if row else 0, after)
    files = _write_events(store, target, run, after, until) if until > after else []
    inputs = _write_inputs(store, target)
    exported_at = iso_utc(utc_now()) or ""
    if files:
        toc["runs"].append(
            {
                "run": run,
                "from_seq": after,
                "to_seq": until,
                "exported_at": exported_at,
                "files": [f.model_dump() for f in files],
            }
        )
        toc["exported_seq"] = until
    toc["inputs"] = inputs
    _write_toc(target, toc)
    return LogExport(
        to=to,
        run=run,
        from_seq=after,
        to_seq=until,
        events=sum(f.rows for f in files),
        files=files,
        inputs=inputs,
        exported_at=exported_at,
    )


def _write_events(
    store: Store, target: _Target, run: int, after: int, until: int
) -> list[ExportedFile]:
    written: list[ExportedFile] = []

    def visit(file: Any) -> None:
        meta = file.metadata
        index = meta.schema.to_arrow_schema().get_field_index("seq")
        stats = [meta.row_group(g).column(index).statistics for g in range(meta.num_row_groups)]
        relative = file.path[len(target.root.rstrip("/")) + 1 :]
        parts = dict(p.split("=", 1) for p in relative.split("/") if "=" in p)
        written.append(
            ExportedFile(
                path=relative,
                day=parts.get("day", ""),
                source_id=parts.get("source_id", ""),
                rows=meta.num_rows,
                min_seq=int(min((s.min for s in stats), default=0)),
                max_seq=int(max((s.max for s in stats), default=0)),
            )
        )

    # A seq range at a time: the writer keeps every partition's file open (and its rows in
    # memory) until the end of a call, so one call over 10M events would hold them all.
    for chunk, low in enumerate(range(after, until, SEQS_PER_CHUNK)):
        high = min(low + SEQS_PER_CHUNK, until)
        with store.stream_arrow(_EVENTS_SQL, {"after": low, "until": high}) as reader:
            _write_chunk(reader, target, f"part-{run:05d}-{chunk:05d}-{{i}}.parquet", visit)
    return sorted(written, key=lambda f: (f.day, f.source_id, f.path))


def _write_chunk(reader: Any, target: _Target, basename: str, visit: Any) -> None:
    ds.write_dataset(
        reader,
        target.path("events"),
        format="parquet",
        filesystem=target.filesystem,
        partitioning=ds.partitioning(
            pa.schema([("day", pa.string()), ("source_id", pa.string())]), flavor="hive"
        ),
        basename_template=basename,
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_file=MAX_ROWS_PER_FILE,
        max_rows_per_group=min(MAX_ROWS_PER_FILE, 500_000),
        file_visitor=visit,
    )


def _remove_unlisted(target: _Target, run: int) -> None:
    """Files of run `run` are leftovers of a run that died before its toc: removed."""
    events = target.path("events")
    if target.filesystem.get_file_info(events).type != pafs.FileType.Directory:
        return
    prefix = f"part-{run:05d}-"
    selector = pafs.FileSelector(events, recursive=True)
    for info in target.filesystem.get_file_info(selector):
        if info.type == pafs.FileType.File and info.base_name.startswith(prefix):
            target.filesystem.delete_file(info.path)


def _write_inputs(store: Store, target: _Target) -> dict[str, int]:
    existing = {row[0] for row in store.fetch_all("SELECT table_name FROM duckdb_tables()")}
    counts: dict[str, int] = {}
    target.filesystem.create_dir(target.path("inputs"), recursive=True)
    for name, sql in INPUTS.items():
        if name not in existing:
            continue
        with store.stream_arrow(sql) as reader:
            table = reader.read_all()
        with target.filesystem.open_output_stream(target.path("inputs", f"{name}.parquet")) as f:
            pq.write_table(table, f)
        counts[name] = table.num_rows
    return counts


def _write_toc(target: _Target, toc: dict[str, Any]) -> None:
    data = orjson.dumps(toc, option=orjson.OPT_INDENT_2)
    final = target.path(TOC)
    if target.local:
        # Atomic on one disk: a reader sees the old toc or the new, never half of one.
        temporary = final + ".tmp"
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, final)
        return
    # Object stores replace an object whole on close.
    with target.filesystem.open_output_stream(final) as stream:
        stream.write(data)
