"""The predictive models and scores in the store: `prediction_models` (each model's last
report and fitted numbers, JSON) and `predicted_traits` (one score per profile and name,
with its reasons), which the computed-trait refresh copies beside the computed traits."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from tessera.store import Store


def save_model(store: Store, name: str, fitted_at: datetime, report: dict[str, Any],
               model: dict[str, Any] | None) -> None:  # fmt: skip
    store.execute(
        "INSERT OR REPLACE INTO prediction_models VALUES (?, ?, ?, ?)",
        [name, fitted_at.replace(tzinfo=None), orjson.dumps(report).decode(),
         orjson.dumps(model).decode() if model is not None else None],
    )  # fmt: skip


def models(store: Store) -> list[tuple[str, datetime, dict[str, Any], dict[str, Any] | None]]:
    """(name, fitted_at, report, fitted numbers) of every model fitted, by name."""
    return [
        (r[0], r[1], orjson.loads(r[2]), orjson.loads(r[3]) if r[3] is not None else None)
        for r in store.fetch_all(
            "SELECT name, fitted_at, report, model FROM prediction_models ORDER BY name"
        )
    ]


def replace_scores(
    store: Store, names: list[str], rows: list[tuple[str, str, float | None, list[str]]],
    fitted_at: dict[str, datetime], scored_at: datetime,
) -> None:  # fmt: skip
    """Replace every score of these trait names with `rows` (profile, name, value,
    reasons), in one transaction."""
    stamp = scored_at.replace(tzinfo=None)
    table = pa.table({
        "profile_id": [r[0] for r in rows],
        "name": [r[1] for r in rows],
        # NaN and infinities (a model at the edge of its range) are stored as no value:
        # JSON cannot hold them and a segment should not match them.
        "value": pa.array([_finite(r[2]) for r in rows], pa.float64()),
        "reasons": [orjson.dumps(r[3]).decode() for r in rows],
        "fitted_at": pa.array([fitted_at[r[1]].replace(tzinfo=None) for r in rows],
                              pa.timestamp("us")),
        "scored_at": pa.array([stamp] * len(rows), pa.timestamp("us")),
    })  # fmt: skip
    with store.transaction():
        store.execute("DELETE FROM predicted_traits WHERE name IN (SELECT unnest(?))", [names])
        if rows:
            store.insert_arrow("predicted_traits", table)


def as_computed(store: Store) -> list[tuple[Any, ...]]:
    """The scores of live profiles as computed-trait rows (profile_id, name, JSON value)."""
    return store.fetch_all(
        "SELECT t.profile_id, t.name, to_json(t.value)::VARCHAR FROM predicted_traits t "
        "JOIN profiles p ON p.profile_id = t.profile_id "
        "WHERE p.merged_into IS NULL AND t.value IS NOT NULL"
    )


def of_profile(
    store: Store, profile_id: str
) -> list[tuple[str, float | None, list[str], datetime]]:
    """(name, value, reasons, fitted_at) of one profile's scores."""
    return [
        (r[0], r[1], orjson.loads(r[2]), r[3])
        for r in store.fetch_all(
            "SELECT name, value, reasons, fitted_at FROM predicted_traits "
            "WHERE profile_id = ? ORDER BY name",
            [profile_id],
        )
    ]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
