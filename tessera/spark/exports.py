"""Ad-platform audience files written by Spark from the memberships it computed.

The same files `tessera audiences export` writes on the serving machine (Google Customer
Match contacts and mobile ids, Meta Custom Audiences, OpenRTB `user.data` lines), byte
for byte: the executors gather each member's identifiers, consent and IAB segments, apply
the consent rule and the audience's holdout (`profiles/consent.py`,
`audiences/campaigns.py`) and run the serving machine's own writer on one person at a
time (the SHA-256 work is spread over the cluster); the driver then streams the rows, in
profile id order as the serving machine writes them, into one file per audience (the
ad platforms take one file). Written with pyarrow's filesystems, so `s3://` works too.

    OUTPUT/exports/<segment>.<format>.csv (.ndjson for openrtb)
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import orjson
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tessera.audiences import campaigns
from tessera.audiences.exports import FORMATS, Exported, Person, allows_advertising, write_people
from tessera.errors import InvalidField

_ROWS = (
    "profile_id string, text string, allowed boolean, held boolean, rows long, "
    "without long, refused long"
)


def parse_requests(values: list[str]) -> list[tuple[str, str]]:
    """`SEGMENT:FORMAT` pairs (the CLI's `--export`), checked.

    Raises:
        InvalidField: not SEGMENT:FORMAT, or a format that is not one of FORMATS.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        segment, _, file_format = value.rpartition(":")
        if not segment or file_format not in FORMATS:
            raise InvalidField(
                f"export {value!r} must be SEGMENT:FORMAT with FORMAT one of "
                f"{', '.join(FORMATS)}, e.g. 'vip-france:google'",
                field="export",
                value=value,
            )
        pairs.append((segment, file_format))
    return pairs


def file_name(segment: str, file_format: str) -> str:
    return f"{segment}.{file_format}.{'ndjson' if file_format == 'openrtb' else 'csv'}"


_IDENTIFIERS_SQL = """
SELECT coalesce(p.merged_into, i.profile_id) AS profile_id,
       collect_list(named_struct('type', i.type, 'value', i.value)) AS identifiers
FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id
GROUP BY coalesce(p.merged_into, i.profile_id)
"""
_IAB_SQL = """
SELECT profile_id, collect_list(named_struct('provider', provider, 'id', segment_id)) AS iab
FROM (
  SELECT DISTINCT coalesce(p.merged_into, i.profile_id) AS profile_id, t.provider, t.segment_id
  FROM third_party_memberships t JOIN identities i ON i.type = t.identifier_type
  AND i.value = t.identifier_value LEFT JOIN profiles p ON p.profile_id = i.profile_id
  WHERE t.taxonomy = 'iab-audience' AND t.expires_at > CAST(:now AS TIMESTAMP)
) GROUP BY profile_id
"""


def _people(spark: SparkSession, members: DataFrame, segment_id: str, now: str) -> DataFrame:
    """One row per current member: consent, identifiers, live IAB segments."""
    chosen = members.where(F.col("segment_id") == segment_id).select("profile_id").distinct()
    summaries = spark.table("profile_summaries").select("profile_id", "consent")
    return (
        chosen.join(summaries, "profile_id")
        .join(spark.sql(_IDENTIFIERS_SQL), "profile_id", "left")
        .join(spark.sql(_IAB_SQL, args={"now": now}), "profile_id", "left")
    )


def _listed(value: Any) -> list[Any]:
    """An array cell as Arrow hands it to pandas (None, or an array of dicts)."""
    return [] if value is None else list(value)


def _rows(file_format: str, segment: dict[str, Any], policy: str,
          holdout: tuple[str, float] | None) -> Any:  # fmt: skip
    """The executors' step: each person's rows, by the serving machine's writer."""
    header = io.StringIO()
    write_people([], file_format, header, segment)
    skip = len(header.getvalue())

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            out: list[dict[str, Any]] = []
            for record in frame.to_dict("records"):
                consent = orjson.loads(record["consent"]) if record["consent"] else {}
                person = Person(record["profile_id"], consent)
                for item in sorted(_listed(record["identifiers"]),
                                   key=lambda i: (i["type"], i["value"])):  # fmt: skip
                    person.identifiers[item["type"]].append(item["value"])
                for item in _listed(record["iab"]):
                    person.iab_segments[item["provider"]].add(item["id"])
                allowed = allows_advertising(person.consent, policy)
                held = (
                    allowed
                    and holdout is not None
                    and campaigns.held_out(person.profile_id, *holdout)
                )
                text, rows, without, refused = "", 0, 0, 0
                if allowed and not held:
                    buffer = io.StringIO()
                    rows, without, refused = write_people([person], file_format, buffer,
                                                          segment)  # fmt: skip
                    text = buffer.getvalue()[skip:]
                out.append({"profile_id": person.profile_id, "text": text, "allowed": allowed,
                            "held": held, "rows": rows, "without": without,
                            "refused": refused})  # fmt: skip
            yield pd.DataFrame(out, columns=list(_columns()))

    return run


def _columns() -> Iterator[str]:
    return (part.split()[0] for part in _ROWS.split(", "))


def export(
    spark: SparkSession,
    members: DataFrame,
    out: str,
    segment_name: str,
    file_format: str,
    policy: str,
    now: str,
) -> Exported:
    """Write `segment_name`'s file in `file_format` under `out`/exports from `members`
    (`segment_id, profile_id`, Spark's), with the views `run` made.

    Raises:
        InvalidField: the segment is not in the export.
    """
    found = spark.table("segments").where(F.col("name") == segment_name).collect()
    if not found:
        raise InvalidField(
            f"segment {segment_name!r} is not in the exported log: export it again after "
            "creating it",
            field="export",
            value=segment_name,
        )
    segment = {"id": found[0]["id"], "name": found[0]["name"]}
    holdouts = spark.table("audience_holdouts").where(F.col("audience") == segment_name)
    held = [(r["salt"], float(r["share"])) for r in holdouts.collect()]
    people = _people(spark, members, segment["id"], now)
    rows = people.mapInPandas(_rows(file_format, segment, policy, held[0] if held else None),
                              _ROWS).cache()  # fmt: skip
    totals = rows.agg(
        F.count("*").alias("members"),
        F.sum(F.col("allowed").cast("long")).alias("allowed"),
        F.sum(F.col("held").cast("long")).alias("held"),
        F.sum("rows").alias("rows"),
        F.sum("without").alias("without"),
        F.sum("refused").alias("refused"),
    ).first()
    assert totals is not None
    header = io.StringIO()
    write_people([], file_format, header, segment)
    with _open(f"{out}/exports/{file_name(segment_name, file_format)}") as stream:
        stream.write(header.getvalue().encode())
        for row in rows.where(F.col("text") != "").orderBy("profile_id").toLocalIterator():
            stream.write(row["text"].encode())
    rows.unpersist()
    members_count = int(totals["members"])
    allowed = int(totals["allowed"] or 0)
    kept_out = int(totals["held"] or 0)
    without = int(totals["without"] or 0)
    return Exported(
        segment=segment_name,
        format=file_format,
        members=members_count,
        refused_consent=members_count - allowed,
        held_out=kept_out,
        exported_profiles=allowed - kept_out - without,
        without_identifier=without,
        refused_advertising_ids=int(totals["refused"] or 0),
        rows=int(totals["rows"] or 0),
        consent_policy=policy,
    )


def _open(path: str) -> Any:
    """An output stream for `path` (a local path, `s3a://` read as pyarrow's `s3://`)."""
    import pyarrow.fs as pafs

    target = "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path
    try:
        filesystem, where = pafs.FileSystem.from_uri(target)
    except Exception:
        filesystem, where = pafs.LocalFileSystem(), os.path.abspath(path.removeprefix("file://"))
    filesystem.create_dir(where.rsplit("/", 1)[0], recursive=True)
    return filesystem.open_output_stream(where)
