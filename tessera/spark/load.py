"""`tessera spark load`: Spark's results into the serving store, so it serves them.

Reads the Parquet tables `tessera spark run` wrote (with pyarrow: no Spark needed on the
serving machine) and, in one transaction, replaces the derived tables a rebuild replaces
and moves the pipeline to the exported seq; then records segment membership as an
evaluation does (who entered, who left). The lookalikes Spark scored get Spark's ranked
candidates (their reach stays); the others keep theirs. The computed-trait aggregates the
pipeline keeps incrementally are emptied: it fills them again from the log when it next
starts, so the next batches carry on from Spark's state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from tessera.errors import InvalidField
from tessera.events.timestamps import utc_now
from tessera.results import Result
from tessera.segments import service as segments
from tessera.store import Store

#: table -> its columns in the store's order
TABLES: dict[str, tuple[str, ...]] = {
    "event_profiles": ("seq", "profile_id"),
    "identities": ("type", "value", "profile_id", "first_seq"),
    "profiles": ("profile_id", "created_seq", "merged_into", "flagged"),
    "profile_summaries": ("profile_id", "first_seen", "last_seen", "event_count", "channels",
                          "traits", "trait_state", "consent"),
    "identity_ledger": ("id", "seq", "kind", "profile_id", "identifier", "other_identifier",
                        "other_profile_id", "rule"),
}  # fmt: skip
#: emptied without a replacement: the pipeline refills them from the log
_REFILLED = ("trait_aggregates", "trait_aggregate_keys")


class SparkLoad(Result):
    """What `tessera spark load` put in the store."""

    directory: str
    rows: dict[str, int]
    processed_seq: int
    segments: dict[str, dict[str, int]]


def _read(directory: str, name: str) -> pa.Table:
    try:
        filesystem, root = pafs.FileSystem.from_uri(directory)
    except (pa.ArrowInvalid, ValueError):
        filesystem, root = pafs.LocalFileSystem(), directory
    path = f"{root.rstrip('/')}/{name}"
    if filesystem.get_file_info(path).type != pafs.FileType.Directory:
        raise InvalidField(
            f"{directory!r} has no {name}/ table: is it the output of `tessera spark run`?",
            field="directory",
            value=directory,
        )
    return ds.dataset(path, format="parquet", filesystem=filesystem).to_table()


def load(store: Store, directory: str, now: datetime | None = None) -> SparkLoad:
    """Replace the store's derived state with Spark's from `directory`.

    Raises:
        InvalidField: `directory` is not the output of `tessera spark run`.
    """
    manifest = _read_manifest(directory)
    tables = {name: _read(directory, name).select(list(columns)) for name, columns in
              TABLES.items()}  # fmt: skip
    traits = _read(directory, "computed_traits").select(["profile_id", "name", "value"])
    members = _read(directory, "segment_members")
    # A lookalike deleted since the export keeps no scores.
    existing = {r[0] for r in store.fetch_all("SELECT name FROM lookalikes")}
    scored = sorted(set(manifest.get("lookalikes", {})) & existing)
    lookalikes = None
    if scored:
        lookalikes = _read(directory, "lookalike_members").select(
            ["lookalike", "profile_id", "score", "rank"]
        )
        lookalikes = lookalikes.filter(pc.is_in(lookalikes["lookalike"], pa.array(scored)))
    moment = (now or utc_now()).replace(tzinfo=None)
    processed = int(manifest.get("processed_seq", 0))
    with store.transaction():
        for name in (*TABLES, *_REFILLED):
            store.execute(f"DELETE FROM {name}")
        # Signal traits live beside computed ones but are not Spark's (audiences/signals.py):
        # kept until the pipeline's next refresh evaluates them again.
        store.execute(
            "DELETE FROM computed_traits WHERE name NOT IN (SELECT name FROM signal_traits)"
        )
        for name, table in tables.items():
            if table.num_rows:
                store.insert_arrow(name, table)
        if traits.num_rows:
            stamped = traits.append_column(
                "computed_at", pa.array([moment] * traits.num_rows, pa.timestamp("us"))
            )
            store.insert_arrow("computed_traits", stamped)
        if lookalikes is not None:
            store.execute(
                "DELETE FROM lookalike_members WHERE list_contains(?, lookalike)", [scored]
            )
            if lookalikes.num_rows:
                store.insert_arrow("lookalike_members", lookalikes)
        store.execute(
            "INSERT OR REPLACE INTO pipeline_state VALUES ('processed_seq', ?)", [processed]
        )
    by_segment: dict[str, set[str]] = {}
    for segment_id, profile_id in zip(
        members.column("segment_id").to_pylist(),
        members.column("profile_id").to_pylist(),
        strict=True,
    ):
        by_segment.setdefault(segment_id, set()).add(profile_id)
    # A segment Spark evaluated with no member still has its members leave.
    for segment_id in manifest.get("segments_evaluated", []):
        by_segment.setdefault(segment_id, set())
    moves = segments.apply_members(store, by_segment, moment)
    rows = {name: table.num_rows for name, table in tables.items()}
    rows["computed_traits"] = traits.num_rows
    rows["segment_members"] = members.num_rows
    rows["lookalike_members"] = lookalikes.num_rows if lookalikes is not None else 0
    return SparkLoad(directory=directory, rows=rows, processed_seq=processed, segments=moves)


def _read_manifest(directory: str) -> dict[str, Any]:
    try:
        filesystem, root = pafs.FileSystem.from_uri(directory)
    except (pa.ArrowInvalid, ValueError):
        filesystem, root = pafs.LocalFileSystem(), directory
    path = f"{root.rstrip('/')}/run.json"
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        raise InvalidField(
            f"{directory!r} has no run.json: is it the output of `tessera spark run`?",
            field="directory",
            value=directory,
        )
    with filesystem.open_input_stream(path) as stream:
        manifest: dict[str, Any] = orjson.loads(stream.read())
    return manifest
