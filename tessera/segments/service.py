"""Segments as a use case: define, preview, evaluate with history, members, why, overlap.

Evaluation is batch: one SQL query per segment over every profile, run when a segment is
created (a backfill from the whole history, at once) and after each pipeline run and
periodic sweep (so time windows slide). Each evaluation diffs the new members against the
open stays: newcomers enter, the others leave, and `segment_members` keeps the history.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, assert_never

import orjson

from tessera.catalog.joins import DEFAULT_KEYS
from tessera.catalog.keys import ProductKeys
from tessera.errors import Conflict, InvalidField, NotFound, SegmentNameReserved, TesseraError
from tessera.events.timestamps import iso_utc
from tessera.paging import Page, check_limit, decode_cursor, page_of
from tessera.segments import failures
from tessera.segments.check import SegmentCheckError, catalogue, check, forget
from tessera.segments.compiler import compile_segment, compile_segments
from tessera.segments.describe import describe
from tessera.segments.errors import SegmentCannotRun
from tessera.segments.failures import NOT_SEGMENT_FAULTS, SEGMENT_FAULTS
from tessera.segments.literals import check_stored
from tessera.segments.parser import parse
from tessera.segments.tree import (
    Aggregate,
    And,
    Compare,
    Did,
    HasIdentifier,
    HasThirdParty,
    InLookalike,
    InSegment,
    Node,
    Not,
    Or,
    Population,
    SeenOn,
    children,
    from_json,
    to_json,
)
from tessera.store import QueryFailed, Store

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# Path words under /api/segments/ and /segments/: a segment of that name would be hidden
# by the route (GET /api/segments/overlap is the overlap, not the segment "overlap").
RESERVED_NAMES = frozenset({"overlap", "preview", "new", "check"})


def understand(store: Store, query: str, computed_names: set[str]) -> Node:
    """Parse and check: the tree, or an error at the spot with a suggestion."""
    tree = parse(query)
    try:
        return check(tree, catalogue(store, computed_names), query)
    except SegmentCheckError:
        # The catalogue is cached for a few seconds; a trait or event that arrived since
        # must not be refused, so read it again before saying a name is unknown.
        forget(store)
        return check(tree, catalogue(store, computed_names), query)


def preview(
    store: Store,
    query: str,
    computed_names: set[str],
    *,
    sample: int = 10,
    now: datetime | None = None,
    products: ProductKeys = DEFAULT_KEYS,
    enrichment_policy: str = "required",
) -> dict[str, Any]:
    """Size, a sample of members, the description and the SQL, without saving.
    `products` says where events name products (TESSERA_PRODUCT_ID_PROPERTIES), and
    `enrichment_policy` is the consent policy of third-party enrichment's purpose, which
    `has third_party` applies (`compiler.compile_segment`): here and in every function
    below that evaluates."""
    tree = understand(store, query, computed_names)
    members = _run(store, tree, _now(now), products=products, enrichment_policy=enrichment_policy)
    return {
        "size": len(members),
        "sample": sorted(members)[:sample],
        "description": describe(tree),
        "tree": to_json(tree),
        "sql": compile_segment(
            tree, now=_now(now), products=products, enrichment_policy=enrichment_policy
        ).sql,
    }


def check_name(name: str) -> str:
    """A name a new segment may take (lookalikes, which make a segment, check it first).

    Raises:
        InvalidField: not lower-case letters, digits, '_', '-' or '.'.
        SegmentNameReserved: a word of the API's or the console's paths."""
    if not _NAME.match(name):
        raise InvalidField(
            f"segment name {name!r} must be lower-case letters, digits, '_', "
            "'-' or '.', e.g. 'vip-france'",
            field="name",
            value=name,
        )
    if name in RESERVED_NAMES:
        raise SegmentNameReserved(
            f"segment name {name!r} is a word of the API's and the console's paths; pick "
            f"another name (reserved: {', '.join(sorted(RESERVED_NAMES))})",
            field="name",
            value=name,
        )
    return name


def create(
    store: Store,
    name: str,
    query: str,
    computed_names: set[str],
    now: datetime | None = None,
    *,
    exposed: bool = False,
    products: ProductKeys = DEFAULT_KEYS,
    enrichment_policy: str = "required",
) -> dict[str, Any]:
    check_name(name)
    if store.fetch_one("SELECT 1 FROM segments WHERE name = ?", [name]):
        raise Conflict(f"a segment named {name!r} exists already; delete it or pick another name")
    tree = understand(store, query, computed_names)
    moment = _now(now)
    # Run once before saving (the backfill from the whole history): a query that cannot
    # run is refused with its reason and nothing is saved.
    members = _run(store, tree, moment, products=products, enrichment_policy=enrichment_policy)
    segment_id = "seg_" + secrets.token_hex(6)
    try:
        with store.transaction():
            store.execute(
                "INSERT INTO segments (id, name, query, tree, description, created_at, "
                "updated_at, evaluated_at, exposed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [segment_id, name, query, orjson.dumps(to_json(tree)).decode(),
                 describe(tree), moment, moment, moment, exposed],
            )  # fmt: skip
            _record_moves(store, {segment_id: members}, moment, None)
    except QueryFailed as e:  # the same name created at the same moment
        if store.fetch_one("SELECT 1 FROM segments WHERE name = ?", [name]):
            raise Conflict(f"a segment named {name!r} exists already") from e
        raise
    return get(store, name)


def update(
    store: Store,
    name: str,
    query: str,
    computed_names: set[str],
    now: datetime | None = None,
    *,
    products: ProductKeys = DEFAULT_KEYS,
    enrichment_policy: str = "required",
) -> dict[str, Any]:
    """Change a segment's query: checked and run once like a new one (nothing changes
    when it fails), then its membership follows the new query at once (who no longer
    matches leaves, the history is kept) and a failed state clears."""
    segment = _row(store, name)
    tree = understand(store, query, computed_names)
    cycle = _reaching(store, referenced(tree), name)
    if cycle:
        raise InvalidField(
            f"segment {name!r} cannot depend on itself: {' -> '.join([name, *cycle])}",
            field="query",
            value=query,
        )
    moment = _now(now)
    members = _run(store, tree, moment, products=products, enrichment_policy=enrichment_policy)
    with store.transaction():
        store.execute(
            "UPDATE segments SET query = ?, tree = ?, description = ?, updated_at = ?, "
            "evaluated_at = ? WHERE id = ?",
            [query, orjson.dumps(to_json(tree)).decode(), describe(tree), moment, moment,
             segment["id"]],
        )  # fmt: skip
        _record_moves(store, {segment["id"]: members}, moment, None)
        failures.clear(store, [segment["id"]])
    return get(store, name)


def set_exposed(store: Store, name: str, exposed: bool) -> dict[str, Any]:
    """Expose the segment to the decision API (its name is answered to the visitors in
    it) or stop; its definition and members are untouched."""
    segment = _row(store, name)
    store.execute(
        "UPDATE segments SET exposed = ?, updated_at = ? WHERE id = ?",
        [exposed, _now(None), segment["id"]],
    )
    return get(store, name)


def exposed_names(store: Store) -> list[str]:
    """The segments flagged exposed, by name."""
    return [r[0] for r in store.fetch_all("SELECT name FROM segments WHERE exposed ORDER BY name")]


def delete(store: Store, name: str) -> None:
    segment = _row(store, name)
    users = [n for n, (_, tree) in sorted(_trees(store, None).items()) if name in referenced(tree)]
    if users:
        raise Conflict(f"segment {name!r} is used by {', '.join(users)}; delete those first")
    with store.transaction():
        store.execute("DELETE FROM segment_members WHERE segment_id = ?", [segment["id"]])
        failures.clear(store, [segment["id"]])
        store.execute("DELETE FROM segments WHERE id = ?", [segment["id"]])


def get(store: Store, name: str) -> dict[str, Any]:
    segment = _row(store, name)
    size = store.fetch_one(
        "SELECT count(*) FROM segment_members WHERE segment_id = ? AND left_at IS NULL",
        [segment["id"]],
    )
    return {
        **{k: v for k, v in segment.items() if k != "tree"},
        "tree": _tree_json(segment["tree"]),
        "size": size[0] if size else 0,
        **failures.of(store, segment["id"]),
    }


def list_segments(store: Store) -> list[dict[str, Any]]:
    """Every segment with its size and its status: "failed" (with the reason and when)
    when its last evaluation failed, else "ok"."""
    rows = store.fetch_dicts(
        "SELECT g.name, g.description, g.query, g.evaluated_at, "
        "coalesce(g.exposed, false) AS exposed, "
        "count(m.profile_id) FILTER (WHERE m.left_at IS NULL) AS size, "
        "f.reason AS failure, f.failed_at "
        "FROM segments g LEFT JOIN segment_members m ON m.segment_id = g.id "
        "LEFT JOIN segment_failures f ON f.segment_id = g.id "
        "GROUP BY ALL ORDER BY g.name"
    )
    for row in rows:
        row |= failures.status(row.pop("failure"), row.pop("failed_at"))
    return rows


def evaluate(
    store: Store,
    name: str,
    now: datetime | None = None,
    *,
    products: ProductKeys = DEFAULT_KEYS,
    enrichment_policy: str = "required",
) -> dict[str, int]:
    """Re-evaluate one segment over every profile; record who entered and who left.

    Raises:
        SegmentCannotRun: its SQL failed; it is marked failed with the reason."""
    segment = _row(store, name)
    moment = _now(now)
    try:
        members = _evaluate(
            store,
            _tree(segment["tree"]),
            moment,
            products=products,
            enrichment_policy=enrichment_policy,
        )
        with store.transaction():
            changes = _record_moves(store, {segment["id"]: members}, moment, None)
            store.execute(
                "UPDATE segments SET evaluated_at = ? WHERE id = ?", [moment, segment["id"]]
            )
            failures.clear(store, [segment["id"]])
    except NOT_SEGMENT_FAULTS:
        raise
    except SEGMENT_FAULTS as error:
        failures.record(store, segment["id"], name, error, moment)
        raise SegmentCannotRun(
            f"segment {name!r} cannot be evaluated: {failures.reason(error)}; fix its query "
            f"with `tessera segments update {name} --query ...`"
        ) from error
    entered, left = changes[segment["id"]]
    return {"size": len(members), "entered": entered, "left": left}


def evaluate_all(
    store: Store,
    now: datetime | None = None,
    *,
    products: ProductKeys = DEFAULT_KEYS,
    enrichment_policy: str = "required",
) -> dict[str, dict[str, int]]:
    """Every segment over every profile (the pipeline's sweep), those a segment depends on
    (`in segment`) first: one query per layer of dependencies, its members diffed against
    the open stays inside DuckDB (a sweep used to fetch each segment's members into Python
    and send them back, holding the GIL while requests waited). One that fails is marked
    failed (see `failures`) and the others carry on; it is left out of the answer, which
    says who entered and left each of the others."""
    moment = _now(now)
    results = _evaluate_layers(
        store, _trees(store, moment), moment, None, products, enrichment_policy
    )
    if results:
        store.execute(
            "UPDATE segments SET evaluated_at = ? WHERE name IN (SELECT unnest(?))",
            [moment, sorted(results)],
        )
    return {name: results[name] for name in sorted(results)}


def moved_at(store: Store, moment: datetime) -> set[str]:
    """The profiles that entered or left a segment at `moment`: the ones an evaluation
    given that `now` (`evaluate_all(store, moment)`) moved."""
    at = _now(moment)
    return {
        row[0]
        for row in store.fetch_all_yielding(
            "SELECT DISTINCT profile_id FROM segment_members "
            "WHERE entered_at = $at::TIMESTAMP OR left_at = $at::TIMESTAMP",
            {"at": at},
        )
    }


def apply_members(
    store: Store, members: dict[str, set[str]], now: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Membership computed elsewhere (on Spark: `tessera spark load`) as the current one:
    per segment id, who entered and who left, recorded as an evaluation records them.
    Segment ids the store does not know are ignored (deleted since the export)."""
    known = {row[0] for row in store.fetch_all("SELECT id FROM segments")}
    wanted = {sid: profiles for sid, profiles in members.items() if sid in known}
    moment = _now(now)
    with store.transaction():
        changes = _record_moves(store, wanted, moment, None) if wanted else {}
        if wanted:
            store.execute(
                "UPDATE segments SET evaluated_at = ? WHERE id IN (SELECT unnest(?))",
                [moment, list(wanted)],
            )
    return {
        sid: {"size": len(wanted[sid]), "entered": entered, "left": left}
        for sid, (entered, left) in changes.items()
    }


@dataclass
class Changes:
    """What pipeline batches changed since segments were last refreshed."""

    events: set[str] = field(default_factory=set)  # track event names that arrived
    traits: bool = False  # some event carried traits
    any_event: bool = False
    identity: bool = False  # new profiles, links or merges
    consent: bool = False  # some event carried consent (`has third_party` reads it)
    computed: set[str] = field(default_factory=set)  # computed traits whose value changed

    def add(self, other: Changes) -> None:
        self.events |= other.events
        self.computed |= other.computed
        self.traits |= other.traits
        self.any_event |= other.any_event
        self.identity |= other.identity
        self.consent |= other.consent


def affected(tree: Node, changes: Changes, affected_segments: set[str]) -> bool:
    """Could these changes alter this segment for a touched profile? Computed traits
    change with the batches too (incrementally); the refresh of the population-wide ones
    re-evaluates every segment anyway."""
    if changes.identity:
        return True  # a merge combines everything two profiles had
    match tree:
        case And() | Or() | Not():
            return any(affected(i, changes, affected_segments) for i in children(tree))
        case Compare():
            if tree.source == "computed":
                return tree.name in changes.computed
            return changes.traits
        case Did() | Aggregate():
            return tree.event.name in changes.events
        case SeenOn():
            return changes.any_event
        case InSegment():
            return tree.name in affected_segments
        case HasThirdParty():
            # Memberships change with a feed import (followed by a full re-evaluation);
            # whether they count, with the person's consent.
            return changes.consent
        case HasIdentifier() | Population() | InLookalike():
            # Identifiers only change with identity; lookalike audiences with a refit,
            # followed by a full re-evaluation.
            return False
        case _:
            assert_never(tree)


def evaluate_touched(
    store: Store,
    profiles: list[str],
    now: datetime | None = None,
    changes: Changes | None = None,
    *,
    products: ProductKeys = DEFAULT_KEYS,
    enrichment_policy: str = "required",
) -> dict[str, dict[str, int]]:
    """Streaming: re-evaluate every segment for just these profiles, in one query per
    layer of `in segment` dependencies (a segment sees the fresh membership of those it
    depends on). Profiles that no longer exist (merged away) leave their segments."""
    if not profiles:
        return {}
    moment = _now(now)
    trees = _trees(store, moment)
    if changes is not None:
        # Only segments these changes can affect (and those depending on them).
        chosen: set[str] = set()
        while True:
            grown = {n for n, (_, tree) in trees.items() if affected(tree, changes, chosen)}
            if grown <= chosen:
                break
            chosen |= grown
        trees = {n: t for n, t in trees.items() if n in chosen}
    # When the batches touched most profiles (a backlog, a replay), evaluating everyone
    # costs less than restricting the query to a long list, and gives the same answer.
    total = store.fetch_one("SELECT count(*) FROM profile_summaries")
    among: list[str] | None = profiles
    if total and 2 * len(profiles) >= total[0]:
        among = None
    return _evaluate_layers(store, trees, moment, among, products, enrichment_policy)


def _evaluate_layers(
    store: Store,
    trees: dict[str, tuple[str, Node]],
    moment: str,
    among: list[str] | None,
    products: ProductKeys,
    enrichment_policy: str,
) -> dict[str, dict[str, int]]:
    """These segments for `among` (None: everyone), in one query per layer of `in
    segment` dependencies (a segment sees the fresh membership of those it depends on);
    who entered and left each, the failing ones left out (marked failed)."""
    results: dict[str, dict[str, int]] = {}
    pending = dict(trees)
    failing = failures.failing(store)
    while pending:
        layer = [n for n, (_, tree) in pending.items() if not (referenced(tree) & set(pending))]
        if not layer:  # a cycle cannot be created, but never loop for ever
            layer = list(pending)
        # Segments failing already run alone: one that keeps failing must not cost the
        # others a failed shared query and a run each at every refresh.
        healthy = {n: pending[n] for n in layer if pending[n][0] not in failing}
        if healthy:
            results |= _refresh_layer(store, healthy, moment, among, products, enrichment_policy)
        for name in layer:
            if name not in healthy:
                results |= _refresh_layer(
                    store, {name: pending[name]}, moment, among, products, enrichment_policy
                )
        for name in layer:
            del pending[name]
    return results


def _refresh_layer(
    store: Store,
    layer: dict[str, tuple[str, Node]],
    moment: str,
    among: list[str] | None,
    products: ProductKeys,
    enrichment_policy: str = "required",
) -> dict[str, dict[str, int]]:
    """One query for the whole layer; when it fails, each segment alone, so that one
    whose SQL cannot run is marked failed and the others' memberships still change."""
    try:
        return _refresh_together(store, layer, moment, among, products, enrichment_policy)
    except NOT_SEGMENT_FAULTS:
        raise
    except SEGMENT_FAULTS as error:
        if len(layer) == 1:
            [(name, (segment_id, _))] = layer.items()
            failures.record(store, segment_id, name, error, moment)
            return {}
    results: dict[str, dict[str, int]] = {}
    for name, entry in layer.items():
        try:
            results |= _refresh_together(
                store, {name: entry}, moment, among, products, enrichment_policy
            )
        except NOT_SEGMENT_FAULTS:
            raise
        except SEGMENT_FAULTS as error:
            failures.record(store, entry[0], name, error, moment)
    return results


def _refresh_together(
    store: Store,
    layer: dict[str, tuple[str, Node]],
    moment: str,
    among: list[str] | None,
    products: ProductKeys,
    enrichment_policy: str = "required",
) -> dict[str, dict[str, int]]:
    compiled = compile_segments(
        [tree for _, tree in layer.values()],
        now=moment,
        profiles=among,
        products=products,
        enrichment_policy=enrichment_policy,
    )
    ids = [segment_id for segment_id, _ in layer.values()]
    with store.transaction():
        # The query's rows (profile, one boolean per segment) stay in DuckDB: unpivoted
        # into (segment, profile) pairs and diffed there, never through Python.
        store.execute(f"CREATE OR REPLACE TEMP TABLE fresh_rows AS {compiled.sql}",
                      compiled.parameters)  # fmt: skip
        pairs = (
            "SELECT u.profile_id, k.segment_id FROM (UNPIVOT fresh_rows "
            "ON COLUMNS('^m[0-9]+$') INTO NAME col VALUE is_in) u "
            "JOIN (SELECT unnest($cols) AS col, unnest($ids) AS segment_id) k "
            "ON k.col = u.col WHERE u.is_in"
        )
        columns = {"cols": [f"m{i}" for i in range(len(layer))], "ids": ids}
        counts = _apply_moves(store, pairs, columns, ids, moment, among)
        store.execute("DROP TABLE IF EXISTS fresh_rows")
        failures.clear(store, ids)
    return {
        name: {"entered": counts[segment_id][0], "left": counts[segment_id][1]}
        for name, (segment_id, _) in layer.items()
    }


MEMBERS_PAGE_MAX = 10_000
MAIN_IDENTIFIERS = ("user_id", "email", "anonymous_id", "phone")

# One page of current members with their main identifiers, in one query (keyset paging on
# the profile id). An identifier may sit on a profile merged into the member since, so the
# member's own id and the ids merged into it are its owners. `{after}` is either nothing
# or a fixed condition on a bound parameter.
_MEMBERS_PAGE = """
WITH page AS (
    SELECT profile_id, entered_at FROM segment_members
    WHERE segment_id = $segment AND left_at IS NULL {after}
    ORDER BY profile_id LIMIT $fetch
), owners AS (
    SELECT profile_id AS owner, profile_id AS member FROM page
    UNION
    SELECT p.profile_id, p.merged_into FROM profiles p
    WHERE p.merged_into IN (SELECT profile_id FROM page)
), ids AS (
    SELECT o.member, i.type, i.value, i.first_seq FROM identities i
    JOIN owners o ON o.owner = i.profile_id
    WHERE i.type IN (SELECT unnest($types))
)
SELECT page.profile_id, page.entered_at,
    arg_min(ids.value, ids.first_seq) FILTER (WHERE ids.type = 'user_id') AS user_id,
    arg_min(ids.value, ids.first_seq) FILTER (WHERE ids.type = 'email') AS email,
    arg_min(ids.value, ids.first_seq) FILTER (WHERE ids.type = 'anonymous_id') AS anonymous_id,
    arg_min(ids.value, ids.first_seq) FILTER (WHERE ids.type = 'phone') AS phone,
    list(ids.type || ':' || ids.value ORDER BY ids.type, ids.first_seq, ids.value)
        FILTER (WHERE ids.type IS NOT NULL) AS identifiers
FROM page LEFT JOIN ids ON ids.member = page.profile_id
GROUP BY page.profile_id, page.entered_at
ORDER BY page.profile_id
"""


def members(store: Store, name: str, *, limit: int = 100, cursor: str | None = None) -> Page:
    """A page of the segment's current members, by profile id, with the total.

    Each member carries its main identifiers, so a list can be mapped back to one's own
    ids without a look-up per person: `user_id`, `email`, `anonymous_id` and `phone` (the
    first seen of each type, None when the person has none) and `identifiers`, every
    value of those types as `TYPE:VALUE`.

    Raises NotFound for an unknown segment, InvalidField for a limit outside 1 to
    MEMBERS_PAGE_MAX and InvalidCursor for a cursor this list did not hand out.
    """
    check_limit(limit, MEMBERS_PAGE_MAX)
    after = decode_cursor("members", cursor, str)
    segment = _row(store, name)
    parameters: dict[str, Any] = {
        "segment": segment["id"],
        "fetch": limit + 1,
        "types": list(MAIN_IDENTIFIERS),
    }
    condition = ""
    if after is not None:
        condition, parameters["after"] = "AND profile_id > $after", after
    rows = store.fetch_dicts(_MEMBERS_PAGE.format(after=condition), parameters)
    for row in rows:
        row["entered_at"] = iso_utc(row["entered_at"])
        row["identifiers"] = row["identifiers"] or []
    total = store.fetch_one(
        "SELECT count(*) FROM segment_members WHERE segment_id = ? AND left_at IS NULL",
        [segment["id"]],
    )
    return page_of(
        rows, limit=limit, total=total[0] if total else 0, kind="members", key="profile_id"
    )


def member_ids(store: Store, name: str) -> list[str]:
    """Every current member's profile id, in order (for audiences built on a segment)."""
    segment = _row(store, name)
    return [
        row[0]
        for row in store.fetch_all(
            "SELECT profile_id FROM segment_members WHERE segment_id = ? AND left_at IS NULL "
            "ORDER BY profile_id",
            [segment["id"]],
        )
    ]


def memberships(store: Store, profile_id: str) -> list[dict[str, Any]]:
    """The segments a profile is in now, with when it entered each."""
    rows = store.fetch_dicts(
        "SELECT g.name, g.description, m.entered_at FROM segment_members m "
        "JOIN segments g ON g.id = m.segment_id WHERE m.profile_id = ? AND m.left_at IS NULL "
        "ORDER BY g.name",
        [profile_id],
    )
    for row in rows:
        row["entered_at"] = iso_utc(row["entered_at"])
    return rows


def history(store: Store, name: str) -> dict[str, Any]:
    """Size over time (per day) and the latest entries and exits."""
    segment = _row(store, name)
    days = store.fetch_dicts(
        "WITH moves AS (SELECT entered_at AS moment, 1 AS d FROM segment_members "
        "WHERE segment_id = $s "
        "UNION ALL SELECT left_at, -1 FROM segment_members WHERE segment_id = $s AND left_at IS "
        "NOT NULL) SELECT CAST(date_trunc('day', moment) AS DATE) AS day, sum(d) AS change, "
        "sum(sum(d)) OVER (ORDER BY CAST(date_trunc('day', moment) AS DATE)) AS size "
        "FROM moves GROUP BY 1 "
        "ORDER BY 1",
        {"s": segment["id"]},
    )
    for day in days:
        day["day"] = day["day"].isoformat()
    return {"segment": name, "days": days}


def why(
    store: Store,
    name: str,
    profile_id: str,
    now: datetime | None = None,
    *,
    products: ProductKeys = DEFAULT_KEYS,
    enrichment_policy: str = "required",
) -> dict[str, Any]:
    """Which conditions of the segment hold for this profile, and which do not."""
    segment = _row(store, name)
    try:
        tree = _tree(segment["tree"])
    except NOT_SEGMENT_FAULTS:
        raise
    except SEGMENT_FAULTS as error:
        raise SegmentCannotRun(
            f"segment {name!r} cannot be evaluated: {failures.reason(error)}; fix it with "
            "`tessera segments update`"
        ) from error
    moment = _now(now)

    def explain(node: Node) -> dict[str, Any]:
        holds = bool(
            _run(
                store,
                node,
                moment,
                profiles=[profile_id],
                products=products,
                enrichment_policy=enrichment_policy,
            )
        )
        out: dict[str, Any] = {"condition": describe(node), "holds": holds}
        parts = children(node)
        if parts:  # and/or/not: each part explained in turn
            out["parts"] = [explain(item) for item in parts]
        return out

    return {"segment": name, "profile_id": profile_id, **explain(tree)}


def overlap(store: Store) -> list[dict[str, Any]]:
    """Pairwise intersections of current members (and each segment's size)."""
    return store.fetch_dicts(
        "WITH cur AS (SELECT g.name, m.profile_id FROM segment_members m JOIN segments g "
        "ON g.id = m.segment_id WHERE m.left_at IS NULL) "
        "SELECT a.name AS first, b.name AS second, count(*) AS both_count FROM cur a "
        "JOIN cur b ON a.profile_id = b.profile_id AND a.name <= b.name "
        "GROUP BY ALL ORDER BY 1, 2"
    )


def _record_moves(
    store: Store, members: dict[str, set[str]], moment: str, among: list[str] | None
) -> dict[str, tuple[int, int]]:
    """Diff each segment's new members (sets, from a batch evaluation) against its open
    stays: see `_apply_moves`."""
    segment_ids = [sid for sid, profiles in members.items() for _ in profiles]
    profile_ids = [pid for profiles in members.values() for pid in profiles]
    pairs = "SELECT unnest($pair_profiles) AS profile_id, unnest($pair_segments) AS segment_id"
    values = {"pair_profiles": profile_ids, "pair_segments": segment_ids}
    return _apply_moves(store, pairs, values, list(members), moment, among)


def _apply_moves(
    store: Store,
    pairs_sql: str,
    pairs_parameters: dict[str, Any],
    segment_ids: list[str],
    moment: str,
    among: list[str] | None,
) -> dict[str, tuple[int, int]]:
    """The one membership diff, for batch and streaming evaluation alike: `pairs_sql` gives
    the (profile_id, segment_id) pairs that hold now; open stays of these segments (of
    everyone, or only of `among`) that are not among them end, and pairs without an open
    stay begin one. Set-based in DuckDB whatever the number of segments and members. Runs
    inside the caller's transaction; returns (entered, left) per segment id."""
    store.execute(f"CREATE OR REPLACE TEMP TABLE fresh_members AS {pairs_sql}", pairs_parameters)
    scope = "" if among is None else " AND segment_members.profile_id IN (SELECT unnest($among))"
    where_gone = (
        "segment_members.left_at IS NULL AND segment_members.segment_id IN (SELECT unnest($ids))"
        f"{scope} AND NOT EXISTS (SELECT 1 FROM fresh_members f WHERE "
        "f.segment_id = segment_members.segment_id AND f.profile_id = segment_members.profile_id)"
    )
    where_new = (
        "NOT EXISTS (SELECT 1 FROM segment_members m WHERE m.left_at IS NULL "
        "AND m.segment_id = f.segment_id AND m.profile_id = f.profile_id)"
    )
    scoped: dict[str, Any] = {"ids": segment_ids} | ({} if among is None else {"among": among})
    left = dict(store.fetch_all(
        f"SELECT segment_id, count(*) FROM segment_members WHERE {where_gone} GROUP BY 1", scoped
    ))  # fmt: skip
    entered = dict(store.fetch_all(
        f"SELECT f.segment_id, count(*) FROM fresh_members f WHERE {where_new} GROUP BY 1"
    ))  # fmt: skip
    if left:
        store.execute(
            f"UPDATE segment_members SET left_at = $now WHERE {where_gone}",
            scoped | {"now": moment},
        )
    if entered:
        store.execute(
            "INSERT INTO segment_members SELECT f.segment_id, f.profile_id, $now, NULL "
            f"FROM fresh_members f WHERE {where_new}",
            {"now": moment},
        )
    store.execute("DROP TABLE IF EXISTS fresh_members")
    return {sid: (entered.get(sid, 0), left.get(sid, 0)) for sid in segment_ids}


def _evaluate(
    store: Store,
    tree: Node,
    now: str,
    profiles: list[str] | None = None,
    *,
    products: ProductKeys,
    enrichment_policy: str = "required",
) -> set[str]:
    compiled = compile_segment(
        tree, now=now, profiles=profiles, products=products, enrichment_policy=enrichment_policy
    )
    return {r[0] for r in store.fetch_all(compiled.sql, compiled.parameters)}


def _run(
    store: Store,
    tree: Node,
    now: str,
    profiles: list[str] | None = None,
    *,
    products: ProductKeys,
    enrichment_policy: str = "required",
) -> set[str]:
    """Evaluate a segment a user is writing (preview, create, update, why): a failure is
    their 400 with the reason, never a 500, and nothing is saved."""
    try:
        return _evaluate(
            store, tree, now, profiles, products=products, enrichment_policy=enrichment_policy
        )
    except TesseraError:  # already a clear answer (too complex)
        raise
    except NOT_SEGMENT_FAULTS:  # the database's trouble: not the segment's
        raise
    except SEGMENT_FAULTS as error:
        raise SegmentCannotRun(
            f"the segment cannot be evaluated: {failures.reason(error)}; nothing was saved "
            "or changed"
        ) from error


def _tree(stored: str) -> Node:
    """A stored tree, its values checked again: ValueError (or TypeError from
    `from_json`) on one an older version saved with a value its SQL cannot run with."""
    tree = from_json(orjson.loads(stored))
    check_stored(tree)
    return tree


def _tree_json(stored: str) -> Any:
    try:
        return orjson.loads(stored)
    except orjson.JSONDecodeError:
        return None


def _trees(store: Store, moment: str | None) -> dict[str, tuple[str, Node]]:
    """Every segment's tree by name (with its id); one that cannot be read is left out
    (and marked failed, when evaluating at `moment`)."""
    trees: dict[str, tuple[str, Node]] = {}
    for segment_id, name, stored in store.fetch_all("SELECT id, name, tree FROM segments"):
        try:
            trees[name] = (segment_id, _tree(stored))
        except NOT_SEGMENT_FAULTS:
            raise
        except SEGMENT_FAULTS as error:
            if moment is not None:
                failures.record(store, segment_id, name, error, moment)
    return trees


def _reaching(store: Store, start: set[str], target: str) -> list[str]:
    """A path of `in segment` references from one of `start` to `target`, or []."""
    references = {name: referenced(tree) for name, (_, tree) in _trees(store, None).items()}
    paths = [[name] for name in sorted(start)]
    seen: set[str] = set()
    while paths:
        path = paths.pop()
        if path[-1] == target:
            return path
        if path[-1] in seen:
            continue
        seen.add(path[-1])
        paths += [[*path, n] for n in sorted(references.get(path[-1], set()))]
    return []


def referenced(node: Node) -> set[str]:
    """The segments this tree names with `in segment`, at any depth."""
    match node:
        case InSegment():
            return {node.name}
        case And() | Or() | Not():
            return set().union(*(referenced(item) for item in children(node)))
        case (
            Compare() | Did() | Aggregate() | HasIdentifier() | HasThirdParty() | Population()
            | SeenOn() | InLookalike()
        ):  # fmt: skip
            return set()
        case _:
            assert_never(node)


def _row(store: Store, name: str) -> dict[str, Any]:
    rows = store.fetch_dicts(
        "SELECT id, name, query, tree, description, created_at, "
        "updated_at, evaluated_at, coalesce(exposed, false) AS exposed "
        "FROM segments WHERE name = ?",
        [name],
    )
    if not rows:
        known = ", ".join(r[0] for r in store.fetch_all("SELECT name FROM segments")) or "none"
        raise NotFound(f"no segment named {name!r} (known: {known})")
    row = rows[0]
    for key in ("created_at", "updated_at", "evaluated_at"):
        row[key] = iso_utc(row[key])
    return row


def _now(moment: datetime | None) -> str:
    return (moment or datetime.now(UTC)).replace(tzinfo=None).isoformat(sep=" ")
