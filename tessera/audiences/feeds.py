"""Third-party data feeds: a data provider's list of browsers and devices (cookie or mobile ad
id) with the segments it puts them in, ids from a loaded taxonomy (the IAB Audience Taxonomy
by default), each segment with its price (CPM), lifetime and use restrictions.

A feed is CSV (`cookie_id` | `anonymous_id` | `advertising_id` | `device_id` | `id` +
`id_type`, then `segments` separated by `|` or `;`, or `segment_id`; optional `cpm`,
`lifetime_days`) or JSON lines with the same keys (`segments` may be a list).
Re-importing refreshes a membership's expiry. Rows that cannot be used go to a reject file
with the line and the reason.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from tessera.audiences import csv_rows
from tessera.errors import InvalidField, InvalidImportFile
from tessera.events import rejects as reject_files
from tessera.identity.identifiers import normalise
from tessera.profiles import consent as consent_rule
from tessera.results import Result
from tessera.store import Store

#: Browser and device ids (anonymous_id: analytics.js's first-party cookie).
ID_TYPES = ("cookie_id", "anonymous_id", "advertising_id", "device_id")
_SPLIT = re.compile(r"[|;]")
_CHUNK = 50_000


@dataclass(frozen=True)
class FeedOptions:
    provider: str
    taxonomy: str = "iab-audience"
    cpm: float | None = None
    lifetime_days: int = 90
    restrictions: str | None = None


@dataclass(frozen=True)
class Membership:
    segment_id: str
    identifier_type: str
    identifier_value: str
    lifetime_days: int
    cpm: float | None


class FeedImported(Result):
    """A provider's feed imported: rows read, accepted and refused, memberships and
    segments stored."""

    provider: str
    rows: int
    accepted: int
    rejected: int
    memberships: int
    segments: int
    reject_file: str | None


def read_rows(path: Path) -> list[tuple[int, dict[str, Any] | None, str]]:
    """(line, row or None when unreadable, raw text) for a CSV or JSON-lines file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidImportFile(f"cannot read {path}: {e}") from e
    lines = text.splitlines()
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        found: list[tuple[int, dict[str, Any] | None, str]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                value = None
            found.append((number, value if isinstance(value, dict) else None, line))
        return found
    reader = csv.DictReader(lines)
    return [(number, dict(row), csv_rows.raw_text(row))
            for number, row in enumerate(reader, start=2)]  # fmt: skip


def check_row(
    row: dict[str, Any] | None, options: FeedOptions, known_segments: set[str]
) -> tuple[list[Membership], str | None]:
    """A feed row → memberships, or the reason it cannot be used (pure)."""
    if row is None:
        return [], "not a JSON object / unreadable row"
    if shape := csv_rows.shape_problem(row):
        return [], shape
    kind, raw = _identifier(row)
    if kind is None:
        return [], f"no identifier: give one of {', '.join(ID_TYPES)} (or id and id_type)"
    if kind not in ID_TYPES:
        return [], f"id_type {kind!r} is not one of {', '.join(ID_TYPES)}"
    value = normalise(kind, str(raw)) if raw is not None else None
    if not value:
        return [], f"{kind} is empty"
    segments = _segments(row)
    if not segments:
        return [], "no segments (a 'segments' list or a 'segment_id')"
    unknown = [s for s in segments if s not in known_segments]
    if unknown:
        return [], (
            f"segment id(s) {', '.join(unknown[:5])} not in taxonomy {options.taxonomy!r} "
            "(load it with `tessera audiences taxonomy load FILE`)"
        )
    try:
        cpm = float(row["cpm"]) if row.get("cpm") not in (None, "") else options.cpm
        days = int(row["lifetime_days"]) if row.get("lifetime_days") not in (None, "") else None
    except (TypeError, ValueError):
        return (
            [],
            f"cpm {row.get('cpm')!r} or lifetime_days {row.get('lifetime_days')!r} is not a number",
        )
    lifetime = days if days is not None else options.lifetime_days
    if lifetime <= 0 or (cpm is not None and not (math.isfinite(cpm) and cpm >= 0)):
        return [], "lifetime_days must be positive and cpm a number, not negative"
    return [Membership(s, kind, value, lifetime, cpm) for s in segments], None


def import_feed(
    store: Store, path: Path, options: FeedOptions, rejects_dir: Path, now: datetime
) -> FeedImported:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", options.provider):
        raise InvalidField(
            f"provider {options.provider!r} must be lower-case letters, digits, '-', '_' or '.'",
            field="provider",
            value=options.provider,
        )
    known = {
        r[0]
        for r in store.fetch_all(
            "SELECT id FROM taxonomy_nodes WHERE taxonomy = ?", [options.taxonomy]
        )
    }
    if not known:
        raise InvalidField(
            f"taxonomy {options.taxonomy!r} is not loaded: run `tessera audiences taxonomy "
            "load FILE` first",
            field="taxonomy",
            value=options.taxonomy,
        )
    memberships: list[Membership] = []
    rejects: list[tuple[int, str, str]] = []
    rows = read_rows(path)
    for number, row, raw in rows:
        found, problem = check_row(row, options, known)
        if problem:
            rejects.append((number, problem, raw))
        memberships.extend(found)
    for start in range(0, len(memberships), _CHUNK):
        _store(store, memberships[start : start + _CHUNK], options, now)
    reject_file = reject_files.write(
        rejects_dir, f"feed-{options.provider}-{path.stem}.rejects.csv", rejects
    )
    return FeedImported(
        provider=options.provider,
        rows=len(rows),
        accepted=len(rows) - len(rejects),
        rejected=len(rejects),
        memberships=len(memberships),
        segments=len({m.segment_id for m in memberships}),
        reject_file=reject_file,
    )


def _store(
    store: Store, memberships: list[Membership], options: FeedOptions, now: datetime
) -> None:
    columns = {
        "s": [m.segment_id for m in memberships],
        "t": [m.identifier_type for m in memberships],
        "v": [m.identifier_value for m in memberships],
        "e": [now + timedelta(days=m.lifetime_days) for m in memberships],
    }
    catalogue = {m.segment_id: m for m in memberships}
    with store.transaction():
        store.execute(
            "DELETE FROM third_party_memberships AS m USING (SELECT unnest($s) AS s, "
            "unnest($t) AS t, unnest($v) AS v) AS fresh WHERE m.provider = $p AND "
            "m.taxonomy = $x AND m.segment_id = fresh.s AND m.identifier_type = fresh.t "
            "AND m.identifier_value = fresh.v",
            {"p": options.provider, "x": options.taxonomy, **{k: columns[k] for k in "stv"}},
        )
        store.execute(
            "INSERT INTO third_party_memberships SELECT $p, $x, unnest($s), unnest($t), "
            "unnest($v), $now, unnest($e)",
            {"p": options.provider, "x": options.taxonomy, "now": now, **columns},
        )
        store.execute(
            "DELETE FROM third_party_segments WHERE provider = ? AND taxonomy = ? "
            "AND segment_id IN (SELECT unnest(?))",
            [options.provider, options.taxonomy, list(catalogue)],
        )
        store.execute(
            "INSERT INTO third_party_segments SELECT ?, ?, unnest(?), unnest(?), unnest(?), ?, ?",
            [
                options.provider,
                options.taxonomy,
                list(catalogue),
                [m.cpm for m in catalogue.values()],
                [m.lifetime_days for m in catalogue.values()],
                options.restrictions,
                now,
            ],
        )


class ThirdPartySegment(Result):
    """A provider's segment: its taxonomy node, price, lifetime, restrictions, members."""

    provider: str
    taxonomy: str
    segment_id: str
    path: str | None
    cpm: float | None
    lifetime_days: int
    restrictions: str | None
    members: int


def segments(store: Store, now: datetime) -> list[ThirdPartySegment]:
    """Third-party segments by provider: price, lifetime, restrictions, live members."""
    rows = store.fetch_dicts(
        "SELECT g.provider, g.taxonomy, g.segment_id, n.path, g.cpm, g.lifetime_days, "
        "g.restrictions, (SELECT count(*) FROM third_party_memberships t WHERE t.provider = "
        "g.provider AND t.taxonomy = g.taxonomy AND t.segment_id = g.segment_id AND "
        "t.expires_at > $now) AS members FROM third_party_segments g "
        "LEFT JOIN taxonomy_nodes n ON n.taxonomy = g.taxonomy AND n.id = g.segment_id "
        "ORDER BY g.provider, n.path",
        {"now": now},
    )
    return [ThirdPartySegment(**row) for row in rows]


class ThirdPartyMembership(Result):
    """A profile's live membership of a provider's segment, through one identifier."""

    provider: str
    segment_id: str
    path: str | None
    identifier_type: str
    expires_at: datetime
    restrictions: str | None


def of_profile(
    store: Store, profile_id: str, now: datetime, policy: str = "unless_refused"
) -> list[ThirdPartyMembership]:
    """The live third-party segments of one profile, through any of its identifiers.

    Third-party data enriches a profile for advertising: none is joined to a person whose
    consent does not allow it under `policy` (`consent.ENRICHMENT_PURPOSE`; the segment
    condition `has third_party` applies the same rule in SQL)."""
    recorded = store.fetch_one(
        "SELECT consent FROM profile_summaries WHERE profile_id = ?", [profile_id]
    )
    consent = orjson.loads(recorded[0]) if recorded and recorded[0] else {}
    if not consent_rule.allows(consent, consent_rule.ENRICHMENT_PURPOSE, policy):
        return []
    rows = store.fetch_dicts(
        "SELECT DISTINCT t.provider, t.segment_id, n.path, t.identifier_type, t.expires_at, "
        "g.restrictions FROM third_party_memberships t "
        "JOIN identities i ON i.type = t.identifier_type AND i.value = t.identifier_value "
        "LEFT JOIN profiles p ON p.profile_id = i.profile_id "
        "LEFT JOIN taxonomy_nodes n ON n.taxonomy = t.taxonomy AND n.id = t.segment_id "
        "LEFT JOIN third_party_segments g ON g.provider = t.provider AND g.taxonomy = t.taxonomy "
        "AND g.segment_id = t.segment_id "
        "WHERE coalesce(p.merged_into, i.profile_id) = ? AND t.expires_at > ? ORDER BY n.path",
        [profile_id, now],
    )
    return [ThirdPartyMembership(**row) for row in rows]


def _identifier(row: dict[str, Any]) -> tuple[str | None, Any]:
    for kind in ID_TYPES:
        if row.get(kind) not in (None, ""):
            return kind, row[kind]
    if row.get("id") not in (None, "") and row.get("id_type"):
        return str(row["id_type"]).strip().lower(), row["id"]
    return None, None


def _segments(row: dict[str, Any]) -> list[str]:
    raw = row.get("segments", row.get("segment_id"))
    if isinstance(raw, list):
        items = [str(item) for item in raw]
    elif raw in (None, ""):
        return []
    else:
        items = _SPLIT.split(str(raw))
    cleaned = [item.strip().removeprefix("IAB:").removeprefix("iab:").strip() for item in items]
    return sorted({item for item in cleaned if item})
