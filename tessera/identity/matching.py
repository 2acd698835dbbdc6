"""Probabilistic identity: finding the same person in profiles that share no identifier
(the CRM's "Jon Smyth, 12 Rue de la Paix" and the till's "SMITH JOHN, 75002"), and the
review queue for the doubtful ones.

`match` compares live profiles by name, date of birth, postcode, street, city, e-mail and
phone (`comparison.py`) with a Fellegi-Sunter model whose parameters Splink estimates by EM
on the data itself (`matching_model.py`, `store/linkage.py`). A pair at or above
`identity_match_threshold` becomes a probabilistic link; a pair between
`identity_review_threshold` and it waits in the review queue, where a person accepts or
rejects it with the evidence side by side. Links are decisions kept in `identity_matches`:
the identity graph applies them under its rules (limits, unmerges, the circuit breaker)
and the ledger records each with its probability, so `profiles explain` shows why and
`profiles unmerge` undoes it. Two profiles holding different values of a type limited to
one per profile (two user ids) are never offered.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal

import orjson
import pyarrow as pa

from tessera.errors import Conflict, InvalidField, NotFound
from tessera.events.timestamps import iso_utc, utc_now
from tessera.identity import matches as stored_matches
from tessera.identity import matching_model
from tessera.identity.comparison import ComparisonRecord, comparison_record, conflicting_unique_ids
from tessera.identity.context import IdentityContext
from tessera.identity.identifiers import Identifier
from tessera.identity.rules import MergeRules
from tessera.results import Result
from tessera.store import Store
from tessera.store.linkage import link

#: how few known fields leave too little to compare (a profile of cookies only)
MIN_FIELDS = 2


class MatchRun(Result):
    """What one run of the matcher found and did."""

    run_id: str
    mode: Literal["batch", "incremental"]
    profiles: int
    new_profiles: int
    candidates: int
    linked: int
    review: int
    refused_unique_ids: int
    threshold: float
    review_threshold: float
    seconds: float
    rebuild: dict[str, Any] | None


class Match(Result):
    """A pair of profiles the matcher found alike: each side by one identifier (and the
    profile holding it now), the probability, and the evidence per field (the level the
    two values agree at, its match weight and both values: the waterfall)."""

    match_id: str
    first: str
    second: str
    first_profile: str | None
    second_profile: str | None
    probability: float
    match_weight: float
    status: Literal["linked", "review", "accepted", "rejected"]
    evidence: list[dict[str, Any]]
    #: ISO 8601 UTC with its Z, as the API answers times
    found_at: str
    decided_at: str | None
    reason: str | None


def match(context: IdentityContext, *, incremental: bool = False) -> MatchRun:
    """Find probable matches among live profiles, link those above the threshold and queue
    those between the thresholds for review; rebuild when something was linked, so the
    graph and profiles follow. The one use case behind the API, the console and the CLI.

    With `incremental`, only profiles created since the last run are compared (with
    everyone), by the model the last batch run trained; with no run before, it is a batch.
    When the pipeline has processed no event since the last run, nothing is done (an
    empty run with no id): every pair it could find is already decided.

    Raises:
        InvalidField: the thresholds are not 0 < review <= match <= 1.
    """
    started = time.perf_counter()
    store, settings = context.store, context.settings
    upper, lower = settings.identity_match_threshold, settings.identity_review_threshold
    if not 0 < lower <= upper <= 1:
        raise InvalidField(
            f"identity_review_threshold {lower} must be above 0 and at most "
            f"identity_match_threshold {upper}, itself at most 1",
            field="identity_review_threshold",
            value=str(lower),
        )
    position = _processed_seq(store)
    last = store.fetch_one("SELECT max(processed_seq) FROM identity_match_runs")
    if last is not None and last[0] is not None and int(last[0]) >= position:
        # Nothing processed since the last run: its pairs are all decided, and training
        # again on the same profiles would find the same ones. Pressing twice is free.
        return MatchRun(
            run_id="", mode="incremental" if incremental else "batch", profiles=0,
            new_profiles=0, candidates=0, linked=0, review=0, refused_unique_ids=0,
            threshold=upper, review_threshold=lower,
            seconds=round(time.perf_counter() - started, 3), rebuild=None,
        )  # fmt: skip
    rules = MergeRules.build(settings.identity_rules, settings.identity_max_identifiers)
    records, profile_of = profile_records(store, rules)
    previous = _last_batch_run(store) if incremental else None
    mode: Literal["batch", "incremental"] = "incremental" if previous else "batch"
    new: set[str] | None = None
    if previous is not None:
        created = dict(store.fetch_all("SELECT profile_id, created_seq FROM profiles"))
        new = {r.unique_id for r in records if created.get(r.unique_id, 0) > previous[0]}
    scored: list[dict[str, Any]] = []
    model: dict[str, Any] = previous[1] if previous else {}
    if len(records) >= 2 and (new is None or new):
        table_rows = [r.as_row() for r in records]
        known = matching_model.known_fields(table_rows)
        linked = link(
            pa.Table.from_pylist(table_rows),
            matching_model.settings(known=known),
            training=None if previous else matching_model.training(known=known),
            threshold=lower,
            model=previous[1] if previous else None,
        )
        scored, model = linked.pairs, linked.model
    if new is not None:
        scored = [p for p in scored if p["unique_id_l"] in new or p["unique_id_r"] in new]
    decided = _decided_profile_pairs(store, profile_of)
    rows: list[list[Any]] = []
    refused = 0
    run_id = "run_" + hashlib.blake2b(str(time.time_ns()).encode(), digest_size=6).hexdigest()
    now = utc_now()
    for pair in sorted(scored, key=lambda p: -p["match_probability"]):
        left, right = pair["unique_id_l"], pair["unique_id_r"]
        if frozenset((left, right)) in decided:
            continue
        if conflicting_unique_ids(pair["unique_ids_l"] or (), pair["unique_ids_r"] or ()):
            refused += 1
            continue
        decided.add(frozenset((left, right)))
        probability = float(pair["match_probability"])
        if classify(probability, upper, lower) is None:
            continue
        first, second = sorted((pair["anchor_l"], pair["anchor_r"]))
        # The evidence's first and second columns follow the match's (sorted) order.
        steps = matching_model.evidence(pair, model, left_first=first == pair["anchor_l"])
        rows.append([
            _match_id(first, second), first, second, probability, float(pair["match_weight"]),
            orjson.dumps(steps).decode(),
            classify(probability, upper, lower), now, run_id, None, None,
        ])  # fmt: skip
    linked_count = sum(r[6] == "linked" for r in rows)
    with store.transaction() as batch:
        for row in rows:
            batch.execute(
                "INSERT OR IGNORE INTO identity_matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        batch.execute(
            "INSERT INTO identity_match_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, mode, now, round(time.perf_counter() - started, 3),
             position, len(records), len(scored), linked_count,
             len(rows) - linked_count, refused, orjson.dumps(model).decode()],
        )  # fmt: skip
    rebuild = context.pipeline.rebuild().report().model_dump() if linked_count else None
    return MatchRun(
        run_id=run_id, mode=mode, profiles=len(records),
        new_profiles=len(new) if new is not None else len(records), candidates=len(scored),
        linked=linked_count, review=len(rows) - linked_count, refused_unique_ids=refused,
        threshold=upper, review_threshold=lower,
        seconds=round(time.perf_counter() - started, 3), rebuild=rebuild,
    )  # fmt: skip


def classify(probability: float, threshold: float, review_threshold: float) -> str | None:
    """What a pair's match probability makes it: `linked` at or above the threshold,
    `review` from the review threshold, else nothing (None)."""
    if probability >= threshold:
        return "linked"
    return "review" if probability >= review_threshold else None


def profile_records(
    store: Store, rules: MergeRules
) -> tuple[list[ComparisonRecord], dict[str, str]]:
    """Each live profile's comparison record (those with at least MIN_FIELDS fields known),
    and the live profile of every identifier (`type:value`)."""
    held: dict[str, list[Identifier]] = {}
    profile_of: dict[str, str] = {}
    for profile, kind, value in store.fetch_all(
        "SELECT coalesce(p.merged_into, i.profile_id), i.type, i.value FROM identities i "
        "JOIN profiles p ON p.profile_id = i.profile_id ORDER BY i.first_seq, i.type, i.value"
    ):
        identifier = Identifier(kind, value)
        held.setdefault(profile, []).append(identifier)
        profile_of[str(identifier)] = profile
    unique = [kind for kind, rule in rules.types.items() if rule.limit == 1]
    records = []
    for profile, traits in store.fetch_all(
        "SELECT s.profile_id, s.traits FROM profile_summaries s "
        "JOIN profiles p ON p.profile_id = s.profile_id "
        "WHERE p.merged_into IS NULL AND p.flagged IS NULL ORDER BY s.profile_id"
    ):
        identifiers = held.get(profile, [])
        if not identifiers:
            continue
        anchor = str(min(identifiers, key=rules.priority))
        record = comparison_record(profile, orjson.loads(traits), identifiers, unique, anchor)
        if record.known_fields() >= MIN_FIELDS:
            records.append(record)
    return records, profile_of


def review_queue(context: IdentityContext, limit: int = 50) -> list[Match]:
    """The matches waiting for a person, most probable first."""
    return list_matches(context, "review", limit)


def list_matches(
    context: IdentityContext, status: str | None = None, limit: int = 50
) -> list[Match]:
    """Matches of one status (all when None), most probable first, at most `limit`.

    Raises:
        InvalidField: an unknown status or a limit outside 1 to 1000.
    """
    if status is not None and status not in ("linked", "review", "accepted", "rejected"):
        raise InvalidField(
            f"status {status!r} must be one of linked, review, accepted, rejected",
            field="status", value=status,
        )  # fmt: skip
    if not 1 <= limit <= 1000:
        raise InvalidField(f"limit {limit} must be from 1 to 1000", field="limit", value=str(limit))
    store = context.store
    rows = store.fetch_dicts(
        "SELECT * FROM identity_matches WHERE $status IS NULL OR status = $status "
        "ORDER BY probability DESC, match_id LIMIT $limit",
        {"status": status, "limit": limit},
    )
    return [_as_match(store, row) for row in rows]


def show(context: IdentityContext, match_id: str) -> Match:
    row = stored_matches.load(context.store, match_id)
    if row is None:
        raise NotFound(f"no match {match_id!r} (see `tessera identity review`)")
    return _as_match(context.store, row)


def decide(context: IdentityContext, match_id: str, accept: bool, reason: str | None) -> Match:
    """Accept (link the two profiles: the graph is rebuilt) or reject (never offered
    again) a match waiting in review; the decision is kept with its reason.

    Raises:
        NotFound: no such match.
        Conflict: it is not waiting for review (linked, or decided already).
    """
    store = context.store
    row = stored_matches.load(store, match_id)
    if row is None:
        raise NotFound(f"no match {match_id!r} (see `tessera identity review`)")
    if row["status"] != "review":
        raise Conflict(
            f"match {match_id} is {row['status']}, not waiting for review"
            + ("; to separate linked profiles use `tessera profiles unmerge`"
               if row["status"] in stored_matches.IN_FORCE else "")
        )  # fmt: skip
    store.execute(
        "UPDATE identity_matches SET status = ?, decided_at = ?, reason = ? WHERE match_id = ?",
        ["accepted" if accept else "rejected", utc_now(), reason, match_id],
    )
    if accept:
        context.pipeline.rebuild()
    return show(context, match_id)


def _as_match(store: Store, row: dict[str, Any]) -> Match:
    evidence = row["evidence"]
    if isinstance(evidence, str):
        evidence = orjson.loads(evidence)
    profiles = dict(
        store.fetch_all(
            "SELECT i.type || ':' || i.value, coalesce(p.merged_into, i.profile_id) "
            "FROM identities i JOIN profiles p ON p.profile_id = i.profile_id "
            "WHERE i.type || ':' || i.value IN (?, ?)",
            [row["first"], row["second"]],
        )
    )
    return Match(
        match_id=row["match_id"], first=row["first"], second=row["second"],
        first_profile=profiles.get(row["first"]), second_profile=profiles.get(row["second"]),
        probability=row["probability"], match_weight=row["match_weight"], status=row["status"],
        evidence=evidence, found_at=iso_utc(row["found_at"]) or "",
        decided_at=iso_utc(row["decided_at"]),
        reason=row["reason"],
    )  # fmt: skip


def _match_id(first: str, second: str) -> str:
    return "m_" + hashlib.blake2b(f"{first}|{second}".encode(), digest_size=8).hexdigest()


def _decided_profile_pairs(store: Store, profile_of: dict[str, str]) -> set[frozenset[str]]:
    """The profile pairs some stored match already covers (by the profiles its identifiers
    live in now): a run does not offer them again, whatever was decided."""
    pairs = set()
    for first, second in stored_matches.known_pairs(store):
        a, b = profile_of.get(first), profile_of.get(second)
        if a and b:
            pairs.add(frozenset((a, b)))
    return pairs


def _last_batch_run(store: Store) -> tuple[int, dict[str, Any]] | None:
    row = store.fetch_one(
        "SELECT processed_seq, parameters FROM identity_match_runs ORDER BY started_at DESC LIMIT 1"
    )
    if row is None or not row[1] or row[1] == "{}":
        return None
    return int(row[0]), orjson.loads(row[1])


def _processed_seq(store: Store) -> int:
    row = store.fetch_one("SELECT value FROM pipeline_state WHERE key = 'processed_seq'")
    return int(row[0]) if row else 0
