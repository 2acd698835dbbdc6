"""Tracking plans' use cases: set, show, list and delete a source's plan, read its
violations, and infer a plan from the source's recent events as a starting point."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import orjson

from tessera.errors import NotFound
from tessera.events.timestamps import iso_utc, utc_now
from tessera.plans.document import TYPE_KEYED, compile_plan
from tessera.results import Deleted, Result
from tessera.store import Store

#: events read to infer a plan, at most
INFER_LIMIT = 50_000


class Plan(Result):
    source: str
    mode: str
    plan: dict[str, Any]
    updated_at: str | None


class PlanViolation(Result):
    received_at: str | None
    message_id: str | None
    event: str | None
    path: str
    reason: str
    blocked: bool


def set_plan(store: Store, source: str, mode: str, document: Any) -> Plan:
    """Save (or replace) a source's plan, checked and compiled first.

    Raises:
        NotFound: no such source. InvalidField: the mode or the plan is wrong (named).
    """
    source_id = _source_id(store, source)
    compile_plan(mode, document)
    with store.transaction():
        store.execute("DELETE FROM tracking_plans WHERE source_id = ?", [source_id])
        store.execute(
            "INSERT INTO tracking_plans VALUES (?, ?, ?, ?)",
            [source_id, mode, orjson.dumps(document).decode(), utc_now()],
        )
    return get_plan(store, source)


def get_plan(store: Store, source: str) -> Plan:
    source_id = _source_id(store, source)
    row = store.fetch_one(
        "SELECT mode, plan, updated_at FROM tracking_plans WHERE source_id = ?", [source_id]
    )
    if row is None:
        raise NotFound(
            f"source {source!r} has no tracking plan; set one with "
            "`tessera plans set` or infer one with `tessera plans infer`"
        )
    return Plan(source=source, mode=row[0], plan=orjson.loads(row[1]), updated_at=iso_utc(row[2]))


def list_plans(store: Store) -> list[Plan]:
    return [
        Plan(source=name, mode=mode, plan=orjson.loads(text), updated_at=iso_utc(updated))
        for name, mode, text, updated in store.fetch_all(
            "SELECT s.name, p.mode, p.plan, p.updated_at FROM tracking_plans p "
            "JOIN sources s ON s.id = p.source_id ORDER BY s.name"
        )
    ]


def delete_plan(store: Store, source: str) -> Deleted:
    get_plan(store, source)
    store.execute("DELETE FROM tracking_plans WHERE source_id = ?", [_source_id(store, source)])
    return Deleted(deleted=source)


def violations(store: Store, source: str, limit: int = 100) -> list[PlanViolation]:
    """The latest violations recorded for a source, newest first."""
    source_id = _source_id(store, source)
    return [
        PlanViolation(
            received_at=iso_utc(r[0]),
            message_id=r[1],
            event=r[2],
            path=r[3],
            reason=r[4],
            blocked=r[5],
        )
        for r in store.fetch_all(
            "SELECT received_at, message_id, event, path, reason, blocked FROM plan_violations "
            "WHERE source_id = ? ORDER BY received_at DESC LIMIT ?",
            [source_id, limit],
        )
    ]


def infer(store: Store, source: str, days: int) -> Plan:
    """A plan proposed from the source's events of the last `days` days (not saved): each
    event seen, with each property's JSON types, and as required the properties every
    occurrence carried; mode `flag`, so saving it records before it blocks."""
    source_id = _source_id(store, source)
    since = utc_now() - timedelta(days=days)
    rows = store.fetch_all(
        "SELECT type, event, properties, traits FROM events WHERE source_id = ? "
        "AND received_at >= ? ORDER BY seq DESC LIMIT ?",
        [source_id, since, INFER_LIMIT],
    )
    shapes: dict[str, list[dict[str, Any]]] = {}
    traits: list[dict[str, Any]] = []
    for kind, event, properties, trait_text in rows:
        if kind == "identify":
            traits.append(orjson.loads(trait_text) if trait_text else {})
            continue
        key = event if kind == "track" else kind if kind in TYPE_KEYED else None
        if key:
            shapes.setdefault(key, []).append(orjson.loads(properties) if properties else {})
    document: dict[str, Any] = {
        "events": {name: {"properties": _schema(seen)} for name, seen in sorted(shapes.items())}
    }
    if traits:
        document["identify"] = {"traits": _schema(traits)}
    return Plan(source=source, mode="flag", plan=document, updated_at=None)


def _schema(objects: list[dict[str, Any]]) -> dict[str, Any]:
    types: dict[str, set[str]] = {}
    present: Counter[str] = Counter()
    for item in objects:
        if not isinstance(item, dict):
            continue
        for name, value in item.items():
            types.setdefault(name, set()).add(_json_type(value))
            present[name] += 1
    properties = {
        name: {"type": sorted(kinds)[0] if len(kinds) == 1 else sorted(kinds)}
        for name, kinds in sorted(types.items())
    }
    required = sorted(name for name, count in present.items() if count == len(objects))
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _source_id(store: Store, source: str) -> str:
    row = store.fetch_one("SELECT id FROM sources WHERE name = ?", [source])
    if row is None:
        raise NotFound(f"no source {source!r}; see `tessera sources list`")
    return str(row[0])
