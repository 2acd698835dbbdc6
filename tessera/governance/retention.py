"""Retention: how long events, identifiers and inactive people are kept, and the runs
that enforce it.

A policy has a scope:

- `events`: events older than `days`, of one source and/or one event (a track event's
  name, or a message type such as `page`); e.g. page views 13 months, orders 10 years.
  When several policies match an event, the longest keeps it (an order is not deleted
  by a shorter catch-all);
- `identifiers`: profiles whose every identifier is of `identifier_type` (e.g.
  `anonymous_id`, `cookie_id`) and not seen for `days`: their events go;
- `profiles`: known profiles (any) not seen for `days` (inactive customers): their events go.

A run finds what each policy removes (`plan`), then deletes those events and the rows
that hang on the removed profiles (segment stays, lookalike scores, audience members told
to destinations), and rebuilds the derived state from the log. A dry run stops after
`plan`: it reports exactly what the run would remove (the same function; a test holds
them equal). Every run is recorded with its counts.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Literal

import orjson

from tessera.context import Context
from tessera.errors import InvalidField, NotFound
from tessera.events.timestamps import utc_now
from tessera.governance.requests import iso_utc
from tessera.identity.identifiers import SYNC_PREFIX, anonymous_types_sql
from tessera.results import Deleted, Result
from tessera.store import Store

log = logging.getLogger(__name__)

Scope = Literal["events", "identifiers", "profiles"]
SCOPES = ("events", "identifiers", "profiles")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: tables keyed by profile whose rows go with a profile that retention removes
_PROFILE_TABLES = ("segment_members", "lookalike_members", "destination_audience_members")


class Policy(Result):
    name: str
    scope: str
    source: str | None
    event: str | None
    identifier_type: str | None
    days: int
    created_at: str


class PolicyCount(Result):
    policy: str
    events: int
    profiles: int


class RetentionRun(Result):
    """What a run removed (or, dry, would remove), per policy and in all."""

    id: str
    started_at: str
    dry_run: bool
    counts: list[PolicyCount]
    events: int
    profiles: int
    seconds: float


def set_policy(
    store: Store,
    name: str,
    scope: str,
    days: int,
    *,
    source: str | None = None,
    event: str | None = None,
    identifier_type: str | None = None,
) -> Policy:
    """Create or replace a policy. Raises InvalidField naming the field that is wrong."""
    if not _NAME.match(name):
        raise InvalidField(
            f"policy name {name!r} must be lower-case letters, digits, '-', '_' or '.'",
            field="name",
            value=name,
        )
    if scope not in SCOPES:
        raise InvalidField(
            f"scope {scope!r} must be one of {', '.join(SCOPES)}", field="scope", value=scope
        )
    if not 1 <= days <= 365_000:
        raise InvalidField(f"days {days} must be between 1 and 365000", field="days", value=days)
    if scope == "identifiers" and not identifier_type:
        raise InvalidField(
            "an identifiers policy names its identifier_type (e.g. cookie_id)",
            field="identifier_type",
        )
    if scope != "events" and (source or event):
        raise InvalidField("source and event only narrow an events policy", field="scope")
    if source is not None:
        found = store.fetch_one("SELECT 1 FROM sources WHERE name = ?", [source])
        if found is None:
            raise InvalidField(
                f"no source {source!r}; see `tessera sources list`", field="source", value=source
            )
    with store.transaction():
        store.execute("DELETE FROM retention_policies WHERE name = ?", [name])
        store.execute(
            "INSERT INTO retention_policies VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name, scope, source, event, identifier_type, days, utc_now()],
        )
    return get_policy(store, name)


def get_policy(store: Store, name: str) -> Policy:
    for policy in policies(store):
        if policy.name == name:
            return policy
    raise NotFound(f"no retention policy {name!r}; see `tessera privacy retention list`")


def policies(store: Store) -> list[Policy]:
    return [
        Policy(
            name=r[0],
            scope=r[1],
            source=r[2],
            event=r[3],
            identifier_type=r[4],
            days=r[5],
            created_at=iso_utc(r[6]),
        )
        for r in store.fetch_all(
            "SELECT name, scope, source, event, identifier_type, days, created_at "
            "FROM retention_policies ORDER BY name"
        )
    ]


def delete_policy(store: Store, name: str) -> Deleted:
    get_policy(store, name)
    store.execute("DELETE FROM retention_policies WHERE name = ?", [name])
    return Deleted(deleted=name)


def plan(store: Store, now: datetime) -> tuple[list[PolicyCount], set[int], set[str]]:
    """Per policy, the events and profiles it removes; and the union of both (an event
    kept by a longer events policy that also matches it is not removed)."""
    counts: list[PolicyCount] = []
    all_seqs: set[int] = set()
    all_profiles: set[str] = set()
    current = policies(store)
    event_policies = [p for p in current if p.scope == "events"]
    for policy in current:
        cutoff = now - timedelta(days=policy.days)
        profiles: set[str] = set()
        if policy.scope == "events":
            seqs = _expired_events(store, policy, cutoff, event_policies, now)
        else:
            profiles = _inactive_profiles(store, policy, cutoff)
            seqs = _events_of(store, profiles)
        counts.append(PolicyCount(policy=policy.name, events=len(seqs), profiles=len(profiles)))
        all_seqs |= seqs
        all_profiles |= profiles
    return counts, all_seqs, all_profiles


def run(context: Context, *, dry_run: bool = False) -> RetentionRun:
    """Enforce every policy now (or only count, dry); the run is recorded either way."""
    store = context.store
    started, clock = utc_now(), time.perf_counter()
    counts, seqs, profiles = plan(store, started)
    if not dry_run and (seqs or profiles):
        with store.transaction():
            store.execute("DELETE FROM events WHERE seq IN (SELECT unnest(?))", [sorted(seqs)])
            store.execute(
                "DELETE FROM pipeline_failures WHERE seq IN (SELECT unnest(?))", [sorted(seqs)]
            )
            members = _members(store, profiles)
            for table in _PROFILE_TABLES:
                store.execute(
                    f"DELETE FROM {table} WHERE profile_id IN (SELECT unnest(?))", [members]
                )
        context.pipeline.rebuild()
    result = RetentionRun(
        id="ret_" + secrets.token_hex(6),
        started_at=iso_utc(started),
        dry_run=dry_run,
        counts=counts,
        events=len(seqs),
        profiles=len(profiles),
        seconds=round(time.perf_counter() - clock, 3),
    )
    recorded = {
        "policies": [c.model_dump() for c in counts],
        "events": result.events,
        "profiles": result.profiles,
    }
    store.execute(
        "INSERT INTO retention_runs VALUES (?, ?, ?, ?, ?)",
        [result.id, started, dry_run, orjson.dumps(recorded).decode(), result.seconds],
    )
    return result


def runs(store: Store, limit: int = 20) -> list[RetentionRun]:
    """The latest runs first."""
    found = []
    for run_id, started, dry, counts, seconds in store.fetch_all(
        "SELECT id, started_at, dry_run, counts, seconds FROM retention_runs "
        "ORDER BY started_at DESC LIMIT ?",
        [limit],
    ):
        recorded = orjson.loads(counts)
        parsed = [PolicyCount(**c) for c in recorded["policies"]]
        found.append(
            RetentionRun(
                id=run_id,
                started_at=iso_utc(started),
                dry_run=dry,
                counts=parsed,
                events=recorded["events"],
                profiles=recorded["profiles"],
                seconds=seconds,
            )
        )
    return found


class RetentionSchedule:
    """Runs retention every `interval_seconds` in `tessera serve` (a daemon thread); a
    failed run is logged (its type only) and tried again at the next tick."""

    def __init__(self, context: Context, interval_seconds: float) -> None:
        self._context = context
        self._interval = interval_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="tessera-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval):
            if not policies(self._context.store):
                continue
            try:
                run(self._context)
            except Exception as e:  # the next tick tries again
                log.error(
                    "the retention run failed (%s); it runs again in %.0f s",
                    type(e).__name__,
                    self._interval,
                )


# -- what each scope removes ----------------------------------------------------------


def _matches(policy: Policy) -> tuple[str, list[object]]:
    """The SQL condition (over `events e` joined to `sources s`) a policy's filters make."""
    conditions: list[str] = ["TRUE"]
    parameters: list[object] = []
    if policy.source is not None:
        conditions.append("s.name = ?")
        parameters.append(policy.source)
    if policy.event is not None:
        conditions.append("(e.event = ? OR e.type = ?)")
        parameters.extend([policy.event, policy.event])
    return " AND ".join(conditions), parameters


def _expired_events(
    store: Store, policy: Policy, cutoff: datetime, others: list[Policy], now: datetime
) -> set[int]:
    condition, own = _matches(policy)
    parameters: list[object] = [cutoff, *own]
    # An event a longer policy also matches is kept until that one expires too.
    kept = ""
    for other in others:
        if other.name == policy.name or other.days <= policy.days:
            continue
        other_condition, theirs = _matches(other)
        kept += f" AND NOT coalesce({other_condition} AND e.timestamp >= ?, FALSE)"
        parameters.extend([*theirs, now - timedelta(days=other.days)])
    rows = store.fetch_all(
        "SELECT e.seq FROM events e LEFT JOIN sources s ON s.id = e.source_id "
        f"WHERE e.timestamp < ? AND {condition}{kept}",
        parameters,
    )
    return {r[0] for r in rows}


def _inactive_profiles(store: Store, policy: Policy, cutoff: datetime) -> set[str]:
    if policy.scope == "identifiers":
        rows = store.fetch_all(
            "SELECT s.profile_id FROM profile_summaries s WHERE s.last_seen < ? AND NOT EXISTS "
            "(SELECT 1 FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id "
            " WHERE coalesce(p.merged_into, i.profile_id) = s.profile_id AND i.type <> ?)",
            [cutoff, policy.identifier_type],
        )
    else:
        rows = store.fetch_all(
            "SELECT s.profile_id FROM profile_summaries s WHERE s.last_seen < ? AND EXISTS "
            "(SELECT 1 FROM identities i LEFT JOIN profiles p ON p.profile_id = i.profile_id "
            " WHERE coalesce(p.merged_into, i.profile_id) = s.profile_id "
            f" AND i.type NOT IN {anonymous_types_sql()} AND NOT starts_with(i.type, ?))",
            [cutoff, SYNC_PREFIX],
        )
    return {r[0] for r in rows}


def _members(store: Store, profiles: set[str]) -> list[str]:
    if not profiles:
        return []
    rows = store.fetch_all(
        "SELECT profile_id FROM profiles WHERE profile_id IN (SELECT unnest(?)) "
        "OR merged_into IN (SELECT unnest(?))",
        [sorted(profiles), sorted(profiles)],
    )
    return sorted({r[0] for r in rows} | profiles)


def _events_of(store: Store, profiles: set[str]) -> set[int]:
    if not profiles:
        return set()
    rows = store.fetch_all(
        "SELECT DISTINCT seq FROM event_profiles WHERE profile_id IN (SELECT unnest(?))",
        [_members(store, profiles)],
    )
    return {r[0] for r in rows}
