"""Campaign results per audience, and lift against a holdout group.

- Delivery and results come from the ad platforms' reports: a CSV with `campaign`, `day`,
  `audience` (the segment sent), `impressions`, `clicks`, `conversions`, `cost` and optionally
  `reach`. Rows are checked one by one; bad ones go to a reject file with the reason.
  Re-importing a (campaign, day, audience) replaces it.
- Conversions with an identifier (`email`, `phone`, `user_id`, `cookie_id`,
  `advertising_id`, or `id` + `id_type`) join back to profiles through the identity graph.
- A holdout: `holdout(audience, share)` keeps a stable, random-looking share of the audience's
  members out of every export (a hash of the profile id with a salt of the audience), so a
  campaign's effect can be measured: the report compares how many in the exposed group and in
  the holdout did the conversion event (from the event log) since the campaign began.
"""

from __future__ import annotations

import csv
import hashlib
import math
import secrets
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tessera.audiences import csv_rows
from tessera.errors import InvalidField, InvalidImportFile, NotFound
from tessera.events import rejects as reject_files
from tessera.identity.identifiers import normalise
from tessera.results import Result
from tessera.segments import service
from tessera.store import Store

_NUMBERS = ("impressions", "clicks", "conversions")
_ID_TYPES = ("email", "phone", "user_id", "cookie_id", "advertising_id", "anonymous_id")


class Holdout(Result):
    """A share of an audience held out of its exports: how many members, how many kept out."""

    audience: str
    share: float
    members: int
    held_out: int


class CampaignImport(Result):
    """Campaign results or conversions imported: rows read, accepted and refused."""

    rows: int
    accepted: int
    rejected: int
    reject_file: str | None


class ConversionImport(CampaignImport):
    """Conversions imported, and how many of all conversions now match a profile."""

    matched_to_profiles_in_total: int


def held_out(profile_id: str, salt: str, share: float) -> bool:
    """Is this profile in the audience's holdout? Stable for a profile and an audience."""
    digest = hashlib.blake2b(f"{salt}:{profile_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32 < share


def holdout(store: Store, audience: str, share: float, now: datetime) -> Holdout:
    """Hold `share` (0-0.5) of the audience out of its exports from now on."""
    if not 0 < share <= 0.5:
        raise InvalidField(
            f"holdout share {share!r} must be above 0 and at most 0.5 (e.g. 0.1 for 10%)",
            field="share",
            value=share,
        )
    service.get(store, audience)  # it must exist
    salt = secrets.token_hex(8)
    with store.transaction():
        store.execute("DELETE FROM audience_holdouts WHERE audience = ?", [audience])
        store.execute(
            "INSERT INTO audience_holdouts VALUES (?, ?, ?, ?)", [audience, share, salt, now]
        )
    members = service.member_ids(store, audience)
    kept_out = sum(held_out(p, salt, share) for p in members)
    return Holdout(audience=audience, share=share, members=len(members), held_out=kept_out)


def holdout_of(store: Store, audience: str) -> tuple[str, float] | None:
    row = store.fetch_one(
        "SELECT salt, share FROM audience_holdouts WHERE audience = ?", [audience]
    )
    return (row[0], row[1]) if row else None


def import_results(store: Store, path: Path, rejects_dir: Path, now: datetime) -> CampaignImport:
    rows = _read_csv(path)
    good, rejects = _checked(rows, _result_row)
    if good:
        columns = [list(c) for c in zip(*good, strict=True)] + [[now] * len(good)]
        with store.transaction():
            store.execute(
                "DELETE FROM campaign_results AS r USING (SELECT unnest(?) AS c, unnest(?) AS d, "
                "unnest(?) AS a) AS fresh WHERE r.campaign = fresh.c AND r.day = fresh.d "
                "AND r.audience IS NOT DISTINCT FROM fresh.a",
                columns[:3],
            )
            store.execute(
                "INSERT INTO campaign_results SELECT unnest(?), unnest(?), unnest(?), unnest(?), "
                "unnest(?), unnest(?), unnest(?), unnest(?), unnest(?)",
                columns,
            )
    return _summary("results", rows, len(good), rejects, rejects_dir, path)


def import_conversions(store: Store, path: Path, rejects_dir: Path) -> ConversionImport:
    rows = _read_csv(path)
    good, rejects = _checked(rows, _conversion_row)
    if good:
        store.execute(
            "INSERT INTO campaign_conversions SELECT unnest(?), unnest(?), unnest(?), "
            "unnest(?), unnest(?)",
            [list(c) for c in zip(*good, strict=True)],
        )
    summary = _summary("conversions", rows, len(good), rejects, rejects_dir, path)
    matched = store.fetch_one(
        "SELECT count(*) FROM campaign_conversions c JOIN identities i "
        "ON i.type = c.identifier_type AND i.value = c.identifier_value"
    )
    return ConversionImport(
        **summary.model_dump(), matched_to_profiles_in_total=matched[0] if matched else 0
    )


class CampaignResult(Result):
    """One campaign and audience: delivery, rates, cost per acquisition, conversions
    joined to profiles, and the lift over the holdout (None without one)."""

    campaign: str
    audience: str | None
    first_day: str
    last_day: str
    impressions: int | float
    clicks: int | float
    conversions: int | float
    cost: float
    reach: int | float | None
    frequency: float | None
    ctr: float | None
    conversion_rate: float | None
    cpa: float | None
    cpm: float | None
    converted_profiles: int
    lift: dict[str, Any] | None


def report(
    store: Store, *, campaign: str | None = None, conversion_event: str = "Order Completed"
) -> list[CampaignResult]:
    """Per campaign and audience: delivery, rates, cost per acquisition, conversions joined
    to profiles, and (for audiences with a holdout) lift."""
    where, params = ("WHERE r.campaign = ?", [campaign]) if campaign else ("", [])
    rows = store.fetch_dicts(
        "SELECT r.campaign, r.audience, min(r.day) AS first_day, max(r.day) AS last_day, "
        "sum(r.impressions) AS impressions, sum(r.clicks) AS clicks, "
        "sum(r.conversions) AS conversions, sum(r.cost) AS cost, max(r.reach) AS reach "
        f"FROM campaign_results r {where} GROUP BY ALL ORDER BY 1, 2",
        params,
    )
    for row in rows:
        impressions, clicks = row["impressions"], row["clicks"]
        conversions, cost, reach = row["conversions"], row["cost"], row["reach"]
        row["frequency"] = _ratio(impressions, reach)
        row["ctr"] = _ratio(clicks, impressions)
        row["conversion_rate"] = _ratio(conversions, clicks)
        row["cpa"] = _ratio(cost, conversions)
        row["cpm"] = _ratio(cost * 1000, impressions)
        row["cost"] = round(cost, 2)
        matched = store.fetch_one(
            "SELECT count(DISTINCT coalesce(p.merged_into, i.profile_id)) FROM "
            "campaign_conversions c JOIN identities i ON i.type = c.identifier_type "
            "AND i.value = c.identifier_value LEFT JOIN profiles p "
            "ON p.profile_id = i.profile_id WHERE c.campaign = ?",
            [row["campaign"]],
        )
        row["converted_profiles"] = matched[0] if matched else 0
        row["lift"] = (
            _lift(store, row["audience"], row["first_day"], conversion_event)
            if row["audience"]
            else None
        )
        for key in ("first_day", "last_day"):
            row[key] = row[key].isoformat()
    return [CampaignResult(**row) for row in rows]


class CampaignDay(Result):
    """One campaign's delivery on one day for one audience."""

    day: str
    audience: str | None
    impressions: int | float
    clicks: int | float
    conversions: int | float
    cost: float


def daily(store: Store, campaign: str) -> list[CampaignDay]:
    """Per day and audience, for charts."""
    rows = store.fetch_dicts(
        "SELECT day, audience, sum(impressions) AS impressions, sum(clicks) AS clicks, "
        "sum(conversions) AS conversions, sum(cost) AS cost FROM campaign_results "
        "WHERE campaign = ? GROUP BY ALL ORDER BY 1, 2",
        [campaign],
    )
    for row in rows:
        row["day"] = row["day"].isoformat()
    return [CampaignDay(**row) for row in rows]


def _lift(store: Store, audience: str, since: date, event: str) -> dict[str, Any] | None:
    """Conversion (the event, since the campaign's first day) in the exposed group against
    the holdout; None without a holdout."""
    found = holdout_of(store, audience)
    if found is None:
        return None
    salt, share = found
    try:
        members = service.member_ids(store, audience)
    except NotFound:
        return None
    converted = {
        r[0]
        for r in store.fetch_all(
            "SELECT DISTINCT coalesce(p.merged_into, ep.profile_id) FROM events e "
            "JOIN event_profiles ep ON ep.seq = e.seq LEFT JOIN profiles p "
            "ON p.profile_id = ep.profile_id WHERE e.type = 'track' AND e.event = ? "
            "AND e.timestamp >= ?",
            [event, since],
        )
    }
    groups = {"exposed": [0, 0], "holdout": [0, 0]}
    for profile_id in members:
        group = groups["holdout" if held_out(profile_id, salt, share) else "exposed"]
        group[0] += 1
        group[1] += profile_id in converted
    exposed_rate = _ratio(groups["exposed"][1], groups["exposed"][0])
    holdout_rate = _ratio(groups["holdout"][1], groups["holdout"][0])
    lift = None
    if exposed_rate is not None and holdout_rate:
        lift = round(exposed_rate / holdout_rate - 1, 4)
    return {
        "event": event,
        "exposed": groups["exposed"][0],
        "exposed_converted": groups["exposed"][1],
        "holdout": groups["holdout"][0],
        "holdout_converted": groups["holdout"][1],
        "exposed_rate": exposed_rate,
        "holdout_rate": holdout_rate,
        "lift": lift,
    }


def _result_row(row: dict[str, str]) -> tuple[tuple[Any, ...], str | None]:
    campaign = (row.get("campaign") or "").strip()
    if not campaign:
        return (), "no campaign"
    try:
        day = date.fromisoformat((row.get("day") or "").strip())
    except ValueError:
        return (), f"day {row.get('day')!r} is not a date (YYYY-MM-DD)"
    numbers: list[int] = []
    for key in _NUMBERS:
        text = (row.get(key) or "0").strip() or "0"
        if not _is_whole_number(text):
            return (), f"{key} {text!r} is not a whole number"
        numbers.append(int(text))
    try:
        cost = _finite((row.get("cost") or "0").strip() or "0")
    except ValueError:
        return (), f"cost {row.get('cost')!r} is not a number"
    reach_text = (row.get("reach") or "").strip()
    if reach_text and not _is_whole_number(reach_text):
        return (), f"reach {reach_text!r} is not a whole number"
    if numbers[1] > numbers[0] or cost < 0:
        return (), "clicks exceed impressions, or cost is negative"
    audience = (row.get("audience") or "").strip() or None
    reach = int(reach_text) if reach_text else None
    return (campaign, day, audience, *numbers, cost, reach), None


def _conversion_row(row: dict[str, str]) -> tuple[tuple[Any, ...], str | None]:
    campaign = (row.get("campaign") or "").strip()
    if not campaign:
        return (), "no campaign"
    kind = next((k for k in _ID_TYPES if (row.get(k) or "").strip()), None)
    raw = row.get(kind) if kind else None
    if kind is None and (row.get("id") or "").strip() and (row.get("id_type") or "").strip():
        kind, raw = row["id_type"].strip().lower(), row["id"]
    if kind is None or raw is None:
        return (), f"no identifier: give one of {', '.join(_ID_TYPES)} (or id and id_type)"
    value = normalise(kind, raw)
    if not value:
        return (), f"{kind} {raw!r} is not a usable identifier"
    day_text = (row.get("day") or "").strip()
    try:
        day = date.fromisoformat(day_text) if day_text else None
        amount = _finite(row["value"]) if (row.get("value") or "").strip() else None
    except ValueError:
        return (), f"day {day_text!r} or value {row.get('value')!r} is malformed"
    return (campaign, day, kind, value, amount), None


def _is_whole_number(text: str) -> bool:
    # str.isdigit() also holds for '²' and other digits int() refuses.
    return text.isascii() and text.isdigit()


def _finite(text: str) -> float:
    """A float from the text; ValueError for 'nan' and 'inf' too, which cannot be summed."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _checked(
    rows: list[tuple[int, dict[str, str]]],
    check: Callable[[dict[str, str]], tuple[tuple[Any, ...], str | None]],
) -> tuple[list[tuple[Any, ...]], list[tuple[int, str, str]]]:
    """Rows that pass `check`, and the others as (line, reason, raw row) rejects."""
    good: list[tuple[Any, ...]] = []
    rejects: list[tuple[int, str, str]] = []
    for number, row in rows:
        problem = csv_rows.shape_problem(row)
        parsed, problem = ((), problem) if problem else check(row)
        if problem:
            rejects.append((number, problem, csv_rows.raw_text(row)))
        else:
            good.append(parsed)
    return good, rejects


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [(n, dict(row)) for n, row in enumerate(csv.DictReader(handle), start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InvalidImportFile(f"cannot read {path}: {e}") from e


def _summary(
    kind: str,
    rows: list[tuple[int, dict[str, str]]],
    accepted: int,
    rejects: list[tuple[int, str, str]],
    rejects_dir: Path,
    path: Path,
) -> CampaignImport:
    reject_file = reject_files.write(
        rejects_dir, f"campaign-{kind}-{path.stem}.rejects.csv", rejects
    )
    return CampaignImport(rows=len(rows), accepted=accepted, rejected=len(rejects),
                          reject_file=reject_file)  # fmt: skip


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)
