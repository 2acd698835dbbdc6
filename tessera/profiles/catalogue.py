"""Which computed traits exist (built-ins, the YAML file, the API) and materialising them
(from the incremental aggregates, or by the full recompute)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from tessera.catalog.joins import DEFAULT_KEYS
from tessera.catalog.keys import ProductKeys
from tessera.errors import InvalidField, NotFound, UnreadableFile
from tessera.events.timestamps import utc_now
from tessera.profiles import engagement, engagement_refresh, loyalty
from tessera.profiles.aggregate_store import as_json, insert_values
from tessera.profiles.aggregates import Aggregates, Tiles, day_number, rfm
from tessera.profiles.computed import (
    BUILT_IN,
    PREDICTED_NAMES,
    RFM_NAMES,
    RFM_SQL,
    ComputedTrait,
    TraitDefinition,
    compile_all,
    parse_definition,
    rfm_rows,
)
from tessera.store import Store


def load_file(path: Path) -> list[ComputedTrait]:
    """A YAML file: a list of definitions, or {computed_traits: [...]}."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UnreadableFile(f"cannot read computed traits from {path}: {e}", field="file") from e
    if isinstance(document, dict):
        document = document.get("computed_traits")
    if not isinstance(document, list):
        raise InvalidField(f"{path} must hold a list of computed traits")
    return [parse_definition(item) for item in document]


def definitions(store: Store, file: Path | None = None) -> list[ComputedTrait]:
    stored = [
        parse_definition(orjson.loads(row[0]))
        for row in store.fetch_all(
            "SELECT definition FROM computed_trait_definitions ORDER BY name"
        )
    ]
    from_file = load_file(file) if file is not None and file.exists() else []
    return defined(loyalty.rules(store), from_file, stored)


def defined(
    rules: loyalty.LoyaltyRules | None,
    from_file: list[ComputedTrait],
    stored: list[ComputedTrait],
) -> list[ComputedTrait]:
    """Every definition in force: the built-ins, those valued on refresh (with `rules`,
    the spend per category), the file's and the API's. The store's refresh and Spark's
    run (`spark/run.py`) compute the same list."""
    return [*BUILT_IN, *_valued_on_refresh(rules), *from_file, *stored]


#: Traits valued by the whole-population refresh, in one SQL pass over the log, with what
#: is derived from them over everyone (best channel and time, loyalty points and tiers):
#: evidence and conclusion change together. The batches keep no aggregates for them: the
#: engagement traits match every event, and keeping them made the pipeline's batches
#: 40% slower (docs/computed-traits.md).
VALUED_ON_REFRESH = frozenset({engagement.BY_CHANNEL.name, engagement.BY_HOUR.name,
                               loyalty.SPEND.name})  # fmt: skip


def _valued_on_refresh(rules: loyalty.LoyaltyRules | None) -> list[ComputedTrait]:
    """Engagement by channel and hour (for best channel and time); the spend per category
    (for loyalty) once rules are loaded (it joins the catalogue per order)."""
    return [engagement.BY_CHANNEL, engagement.BY_HOUR, *([loyalty.SPEND] if rules else [])]


def batch_traits(traits: list[ComputedTrait]) -> list[ComputedTrait]:
    """The definitions the pipeline's batches keep aggregates for."""
    return [t for t in traits if t.name not in VALUED_ON_REFRESH]


def names(store: Store, file: Path | None = None) -> set[str]:
    """Every computed trait a segment may name: definitions, the RFM scores, the predicted
    traits (tessera/predict) and the signal traits (audiences/signals.py), which are
    stored beside them."""
    signal_names = {r[0] for r in store.fetch_all("SELECT name FROM signal_traits")}
    derived = set(RFM_NAMES) | set(PREDICTED_NAMES) | set(engagement.NAMES) | set(loyalty.NAMES)
    return {t.name for t in definitions(store, file)} | derived | signal_names


def save_definition(store: Store, raw: TraitDefinition | object) -> ComputedTrait:
    trait = parse_definition(raw)
    store.execute(
        "INSERT OR REPLACE INTO computed_trait_definitions VALUES (?, ?, ?)",
        [trait.name, orjson.dumps(trait.to_dict()).decode(), utc_now()],
    )
    return trait


def delete_definition(store: Store, name: str) -> None:
    if store.fetch_one("SELECT 1 FROM computed_trait_definitions WHERE name = ?", [name]) is None:
        raise NotFound(f"no computed trait {name!r} defined through the API")
    store.execute("DELETE FROM computed_trait_definitions WHERE name = ?", [name])
    store.execute("DELETE FROM computed_traits WHERE name = ?", [name])


def recompute(
    store: Store,
    traits: list[ComputedTrait],
    now: datetime,
    products: ProductKeys = DEFAULT_KEYS,
) -> list[tuple[str, str, str | None]]:
    """The full recompute: every trait and the RFM scores over the whole history, in SQL
    (one query: ~0.1 s per 500k events), as (profile_id, name, JSON value) rows. The
    rebuild's answer, and the check the incremental values are held equal to."""
    moment = now.replace(tzinfo=None).isoformat(sep=" ")
    sql, parameters = compile_all(traits, moment, products)
    rows: list[tuple[str, str, str | None]] = [
        (r[0], r[1], r[2]) for r in store.fetch_all_yielding(sql, parameters)
    ]
    values: dict[str, dict[str, Any]] = {}
    for profile, name, value in rows:
        values.setdefault(profile, {})[name] = orjson.loads(value) if value is not None else None
    derived = rows_of(_derived(store, values, loyalty.rules(store)))
    return rows + rfm_rows(store.fetch_all_yielding(RFM_SQL, {"now": moment})) + derived


def _derived(
    store: Store,
    values: dict[str, dict[str, Any]],
    rules: loyalty.LoyaltyRules | None,
    engaged: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The traits derived from others: best channel and time, loyalty points and tiers
    (from `values`). Best channel and time come from `engaged` when given
    (`engagement_refresh.evaluate`'s, with the engagement counts they are derived from,
    which are put in `values` too), else from the log (`engagement.DERIVED_SQL`, read a
    chunk at a time with `fetch_all_yielding`: the refresh computes on a worker thread
    beside requests being served)."""
    found: dict[str, dict[str, Any]] = {}
    if engaged is not None:
        for profile, answers in engaged.items():
            found[profile] = {name: answers.get(name) for name in engagement.NAMES}
            counts = values.setdefault(profile, {})
            for name in engagement.EVIDENCE:
                counts[name] = answers.get(name)
    else:
        for profile, *best in store.fetch_all_yielding(engagement.DERIVED_SQL):
            found[profile] = dict(zip(engagement.NAMES, best, strict=True))
    if rules is not None:
        for profile, traits in values.items():
            if loyal := loyalty.derive(rules, traits):
                found.setdefault(profile, {}).update(loyal)
    return found


def rows_of(values: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str | None]]:
    """Values per profile as `computed_traits` rows: (profile_id, name, JSON value)."""
    return [
        (profile, name, as_json(value))
        for profile, found in values.items()
        for name, value in found.items()
    ]


def completed(
    store: Store,
    values: dict[str, dict[str, Any]],
    now: datetime,
    products: ProductKeys,
    rules: loyalty.LoyaltyRules | None,
    *,
    engaged: Mapping[str, Mapping[str, Any]] | None = None,
    tiles: Tiles | None = None,
) -> dict[str, dict[str, Any]]:
    """`values` (each profile's traits the batches keep, valued for `now`'s day), with
    the traits valued on refresh (one SQL pass), the RFM scores, the best channel and time
    and loyalty (by `rules`) added: every profile's computed traits. Changes `values` and
    returns it. `engaged`: everyone's engagement evidence and best channel and time, and
    `tiles`: the RFM quintiles of `values` (`rfm_tiles`), when the caller has them."""
    for profile, found in valued_on_refresh(store, rules, now, products).items():
        values.setdefault(profile, {}).update(found)
    if engaged is None:
        engaged = engagement_refresh.evaluate(store, None).values
    scores = rfm(values) if tiles is None else tiles.scores(range(len(tiles.ids)))
    return finished(store, values, rules, engaged, scores)


def valued_on_refresh(
    store: Store, rules: loyalty.LoyaltyRules | None, now: datetime, products: ProductKeys
) -> dict[str, dict[str, Any]]:
    """Per profile, the traits valued on refresh in one SQL pass but the engagement
    counts (those come with best channel and time: `engagement_refresh`): the spend per
    category, once there are loyalty rules."""
    others = [t for t in _valued_on_refresh(rules) if t.name not in engagement.EVIDENCE]
    found: dict[str, dict[str, Any]] = {}
    if others:
        moment = now.replace(tzinfo=None).isoformat(sep=" ")
        sql, parameters = compile_all(others, moment, products)
        for profile, name, value in store.fetch_all_yielding(sql, parameters):
            loaded = orjson.loads(value) if value is not None else None
            found.setdefault(profile, {})[name] = loaded
    return found


def finished(
    store: Store,
    values: dict[str, dict[str, Any]],
    rules: loyalty.LoyaltyRules | None,
    engaged: Mapping[str, Mapping[str, Any]],
    scores: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """`values` (with the spend per category) completed: the engagement evidence and best
    channel and time from `engaged`, the RFM `scores`, loyalty points and tiers. Changes
    `values` and returns it; the profiles of `engaged` and `scores` are added to it (the
    refresh gives only those of `values`' profiles when it builds a few)."""
    derived = _derived(store, values, rules, engaged)
    for profile, found in scores.items():
        values.setdefault(profile, {}).update(found)
    for profile, found in derived.items():
        values.setdefault(profile, {}).update(found)
    return values


def current(
    store: Store, aggregates: Aggregates, now: datetime, products: ProductKeys = DEFAULT_KEYS
) -> list[tuple[str, str, str | None]]:
    """Every profile's computed traits and RFM scores for `now` (windows and recency follow
    the day): from the aggregates the batches keep, without reading the log, but for the
    traits valued on refresh (one SQL pass); with loyalty rules, points and tiers."""
    today = day_number(now)
    values = {profile: aggregates.values(profile, today) for profile in aggregates.profiles}
    return rows_of(completed(store, values, now, products, loyalty.rules(store)))


def refresh(
    store: Store,
    rows: list[tuple[Any, ...]],
    now: datetime | None = None,
    extra: list[tuple[Any, ...]] | None = None,
) -> int:
    """Replace every computed trait with `rows` (from `current` or `recompute`) and the
    `extra` rows (signal traits), in one transaction."""
    moment = (now or datetime.now(UTC)).replace(tzinfo=None)
    everything = [*rows, *(extra or [])]
    with store.transaction():
        store.execute("DELETE FROM computed_traits")
        if everything:
            insert_values(store, everything, moment)
    return len(everything)


def load(store: Store) -> dict[str, dict[str, object]]:
    """The materialised computed traits, per profile, for serving from memory."""
    found: dict[str, dict[str, object]] = {}
    for profile, name, value in store.fetch_all(
        "SELECT profile_id, name, value FROM computed_traits ORDER BY profile_id, name"
    ):
        found.setdefault(profile, {})[name] = orjson.loads(value) if value is not None else None
    return found
