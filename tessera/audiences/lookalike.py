"""Lookalike audiences: from a seed segment, find the people most like it.

Features per profile come from the store: track event names, page paths (two levels),
categorical event properties (`category`, `collection`, `brand`...), country and city, the
channels seen on, and third-party segments. Features seen on fewer than MIN_SUPPORT profiles
are dropped. Two models:

- `weights` (v1, after Audience Manager's TraitWeight): a feature weighs log(share in the seed
  / share in the population), kept when positive; a profile's score is the sum of the weights
  of the features it has. Transparent: the weights are the explanation.
- `classifier` (v2): logistic regression of seed (positive) against a sample of everyone else
  (unlabelled, taken as negative: positive-unlabelled learning), on log counts; the score is
  its decision function.

Honest evaluation: 20% of the seed is held out, the model learns from the rest, and the report
says how many held-out members land in the top k of everyone else (recall@k) and how that
compares with picking k at random (lift@k = recall@k / (k / candidates)). The reach-accuracy
curve is the same at several reaches. The audience is the top `reach` profiles, seed excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from tessera.audiences.lookalike_report import Lookalike, LookalikeSummary, Score
from tessera.errors import Conflict, InvalidField, NotFound
from tessera.identity.identifiers import SYNC_PREFIX, anonymous_types_sql
from tessera.profiles import consent as consent_rule
from tessera.segments import service
from tessera.store import Store

if TYPE_CHECKING:
    from scipy import sparse

METHODS = ("weights", "classifier")
POPULATIONS = ("all", "anonymous", "known")
MIN_SUPPORT = 5
REACH_SHARES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
_PROPERTY_KEYS = ("category", "collection", "brand", "product_type", "campaign")
_NEGATIVE_SAMPLE = 50_000
_ANONYMOUS = anonymous_types_sql()

_KEYS_SQL = "[" + ", ".join(f"'{key}'" for key in _PROPERTY_KEYS) + "]"
_PATHS_SQL = "[" + ", ".join(f"'$.{key}'" for key in _PROPERTY_KEYS) + "]"
# One pass over the events: each event gives its features as a list (its name, its page
# path, its categorical properties, read with one JSON parse), unnested and counted. The
# profile-level features (traits, channels, third-party segments) are added to that.
_FEATURES_SQL = f"""
WITH per_event AS (
  SELECT coalesce(m.merged_into, ep.profile_id) AS profile_id, e.type, e.event,
         CASE WHEN e.type = 'page' THEN e.properties->>'path' END AS path,
         CASE WHEN e.type = 'track' THEN json_extract_string(e.properties, {_PATHS_SQL}) END AS vals
  FROM events e JOIN event_profiles ep ON ep.seq = e.seq
  LEFT JOIN (SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL) m
    ON m.profile_id = ep.profile_id
  WHERE e.type IN ('track', 'page')
), raw AS (
  SELECT profile_id, unnest(list_filter(list_concat(
      [CASE WHEN type = 'track' THEN 'event:' || event END,
       CASE WHEN path IS NOT NULL
            THEN 'page:' || regexp_extract(path, '^/[^/?#]*(/[^/?#]*)?') END],
      list_transform(list_zip({_KEYS_SQL}, coalesce(vals, [])),
          lambda kv: CASE WHEN kv[2] IS NOT NULL AND length(kv[2]) <= 60
                     THEN 'property:' || event || '.' || kv[1] || '=' || kv[2] END)
  ), lambda x: x IS NOT NULL)) AS feature FROM per_event
  UNION ALL
  SELECT profile_id, 'trait:country=' || (traits->>'country') FROM profile_summaries
  WHERE traits->>'country' IS NOT NULL
  UNION ALL
  SELECT profile_id, 'trait:city=' || (traits->>'city') FROM profile_summaries
  WHERE traits->>'city' IS NOT NULL
  UNION ALL
  SELECT profile_id, 'channel:' || unnest(from_json(channels, '["VARCHAR"]'))
  FROM profile_summaries
  UNION ALL
  SELECT coalesce(p.merged_into, i.profile_id), 'third_party:' || t.segment_id
  FROM third_party_memberships t JOIN identities i ON i.type = t.identifier_type
  AND i.value = t.identifier_value LEFT JOIN profiles p ON p.profile_id = i.profile_id
  WHERE t.expires_at > $now
), counted AS (
  SELECT profile_id, feature, count(*) AS n FROM raw WHERE feature IS NOT NULL GROUP BY ALL
), supported AS (
  SELECT *, count(*) OVER (PARTITION BY feature) AS support FROM counted
)
SELECT profile_id, feature, n FROM supported
WHERE support >= {MIN_SUPPORT} AND profile_id IN (SELECT profile_id FROM profile_summaries)
"""


@dataclass
class Features:
    profile_ids: list[str]
    names: list[str]
    counts: sparse.csr_matrix  # profiles x features

    def binary(self) -> sparse.csr_matrix:
        return (self.counts > 0).astype(np.float64).tocsr()

    def logs(self) -> sparse.csr_matrix:
        logged = self.counts.astype(np.float64).tocsr()
        logged.data = np.log1p(logged.data)
        return logged


def features(store: Store, now: datetime) -> Features:
    """The feature matrix of every profile with data (one query, indices computed by
    DuckDB so a million profiles never pass through Python one by one)."""
    # Imported here, as scikit-learn below: only building a lookalike needs scipy.
    from scipy import sparse

    store.execute(
        "CREATE OR REPLACE TEMP TABLE lookalike_features AS " + _FEATURES_SQL, {"now": now}
    )
    ids = [r[0] for r in store.fetch_all(
        "SELECT DISTINCT profile_id FROM lookalike_features ORDER BY profile_id"
    )]  # fmt: skip
    names = [r[0] for r in store.fetch_all(
        "SELECT DISTINCT feature FROM lookalike_features ORDER BY feature"
    )]  # fmt: skip
    arrays = store.fetch_numpy(
        "WITH f AS (SELECT * FROM lookalike_features), "
        "p AS (SELECT profile_id, row_number() OVER (ORDER BY profile_id) - 1 AS r "
        "FROM (SELECT DISTINCT profile_id FROM f)), "
        "q AS (SELECT feature, row_number() OVER (ORDER BY feature) - 1 AS c "
        "FROM (SELECT DISTINCT feature FROM lookalike_features)) "
        "SELECT p.r, q.c, f.n FROM f JOIN p USING (profile_id) JOIN q USING (feature)"
    )
    store.execute("DROP TABLE IF EXISTS lookalike_features")
    matrix = sparse.csr_matrix(
        (arrays["n"].astype(np.float64), (arrays["r"], arrays["c"])),
        shape=(len(ids), len(names)),
    )
    return Features(ids, names, matrix)


def in_population(store: Store, profile_ids: list[str], population: str) -> np.ndarray:
    """Which of these profiles the audience may include: all, anonymous or known ones."""
    if population not in POPULATIONS:
        raise InvalidField(
            f"population {population!r} must be one of {', '.join(POPULATIONS)}",
            field="population",
            value=population,
        )
    if population == "all":
        return np.ones(len(profile_ids), dtype=bool)
    known = {
        r[0]
        for r in store.fetch_all(
            "SELECT DISTINCT coalesce(p.merged_into, i.profile_id) FROM identities i "
            f"LEFT JOIN profiles p ON p.profile_id = i.profile_id WHERE i.type NOT IN {_ANONYMOUS} "
            f"AND NOT starts_with(i.type, '{SYNC_PREFIX}')"
        )
    }
    is_known = np.array([p in known for p in profile_ids], dtype=bool)
    return is_known if population == "known" else ~is_known


# -- models (pure) ---------------------------------------------------------------------


def advertising_allowed(store: Store, profile_ids: list[str], policy: str) -> np.ndarray:
    """Per profile (in order), may its data be used for advertising?"""
    recorded = {
        profile_id: orjson.loads(raw)
        for profile_id, raw in store.fetch_all(
            "SELECT profile_id, consent FROM profile_summaries WHERE consent <> '{}' "
            "AND list_contains(?, profile_id)",
            [profile_ids],
        )
    }
    return np.array(
        [consent_rule.allows(recorded.get(p), "advertising", policy) for p in profile_ids],
        dtype=bool,
    )


def fit_weights(
    binary: sparse.csr_matrix, seed: np.ndarray, alpha: float = 1.0, min_ratio: float = 3.0
) -> np.ndarray:
    """TraitWeight: log(seed share / population share) per feature, kept when the feature is
    at least `min_ratio` times commoner in the seed. Weak features cost precision: a known
    customer has dozens of them (city, country, order categories), and their small weights
    added up outranked a visitor with the one page that really marks the seed (measured:
    lift@1% rose from 2.5-4.5x to the figures in the README)."""
    in_seed = np.asarray(binary[seed].sum(axis=0)).ravel()
    others = ~seed
    in_others = np.asarray(binary[others].sum(axis=0)).ravel()
    seed_share = (in_seed + alpha) / (seed.sum() + 2 * alpha)
    other_share = (in_others + alpha) / (others.sum() + 2 * alpha)
    weights: np.ndarray = np.log(seed_share / other_share)
    weights[weights < np.log(min_ratio)] = 0.0
    return weights


def fit_classifier(logs: sparse.csr_matrix, seed: np.ndarray, rng: np.random.Generator) -> Any:
    """Positive (seed) against a sample of the unlabelled rest, classes balanced."""
    # Imported here: scikit-learn takes ~0.8 s to import, which every server start and
    # CLI command would otherwise pay for a model few of them train.
    from sklearn.linear_model import LogisticRegression

    negatives = np.flatnonzero(~seed)
    if len(negatives) > _NEGATIVE_SAMPLE:
        negatives = rng.choice(negatives, _NEGATIVE_SAMPLE, replace=False)
    rows = np.concatenate([np.flatnonzero(seed), negatives])
    labels = np.concatenate([np.ones(seed.sum()), np.zeros(len(negatives))])
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=500, solver="liblinear")
    model.fit(logs[rows], labels)
    return model


@dataclass(frozen=True)
class LinearModel:
    """A trained lookalike as a linear function of the features: score = intercept +
    sum(coefficient * x), x being 1 for a feature the profile has (`binary`, the weights)
    or log(1 + count) (`log1p`, the classifier, whose score is its decision function, the
    log-odds). Only the non-zero coefficients are kept. Stored in the lookalike's report
    so another engine (`tessera/spark/lookalike.py`) scores with it, no scikit-learn
    needed there."""

    method: str
    transform: str
    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float

    @staticmethod
    def of(
        method: str, names: list[str], coefficients: np.ndarray, intercept: float
    ) -> LinearModel:
        kept = np.flatnonzero(coefficients)
        return LinearModel(
            method, "binary" if method == "weights" else "log1p",
            tuple(names[i] for i in kept), tuple(float(coefficients[i]) for i in kept),
            float(intercept),
        )  # fmt: skip

    def stored(self) -> dict[str, Any]:
        return {"method": self.method, "transform": self.transform,
                "features": list(self.features), "coefficients": list(self.coefficients),
                "intercept": self.intercept}  # fmt: skip


def stored_model(report: dict[str, Any]) -> LinearModel | None:
    """The model a lookalike's stored report holds (None for one made before models were
    stored: recreate it)."""
    model = report.get("model")
    if not isinstance(model, dict):
        return None
    return LinearModel(
        str(model["method"]), str(model["transform"]), tuple(model["features"]),
        tuple(float(c) for c in model["coefficients"]), float(model["intercept"]),
    )  # fmt: skip


def scores(
    method: str, data: Features, seed: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[dict[str, Any]], LinearModel]:
    """Scores for every profile, the top weights that explain them and the model."""
    if method == "weights":
        binary = data.binary()
        weights = fit_weights(binary, seed)
        values = binary @ weights
        seed_share = np.asarray(binary[seed].mean(axis=0)).ravel()
        other_share = np.asarray(binary[~seed].mean(axis=0)).ravel()
        top = np.argsort(-weights)[:20]
        explained = [
            {"feature": data.names[i], "weight": round(float(weights[i]), 3),
             "seed_share": round(float(seed_share[i]), 4),
             "population_share": round(float(other_share[i]), 4)}
            for i in top if weights[i] > 0
        ]  # fmt: skip
        model = LinearModel.of(method, data.names, weights, 0.0)
        return np.asarray(values).ravel(), explained, model
    if method == "classifier":
        logs = data.logs()
        model = fit_classifier(logs, seed, rng)
        coefficients = model.coef_.ravel()
        top = np.argsort(-coefficients)[:20]
        explained = [{"feature": data.names[i], "weight": round(float(coefficients[i]), 3)}
                     for i in top]  # fmt: skip
        linear = LinearModel.of(method, data.names, coefficients, float(model.intercept_[0]))
        return model.decision_function(logs), explained, linear
    raise InvalidField(
        f"method {method!r} must be one of {', '.join(METHODS)}", field="method", value=method
    )


def holdout_curve(
    method: str,
    data: Features,
    seed: np.ndarray,
    rng: np.random.Generator,
    holdout: float = 0.2,
    pool: np.ndarray | None = None,
) -> dict[str, Any]:
    """Learn from 80% of the seed; where do the other 20% rank among everyone else (in the
    `pool` the audience is drawn from, if given)?"""
    members = np.flatnonzero(seed)
    rng.shuffle(members)
    held = members[: max(1, round(holdout * len(members)))]
    train = np.zeros_like(seed)
    train[members[len(held) :]] = True
    values, _, _ = scores(method, data, train, rng)
    is_held = np.zeros(len(seed), dtype=bool)
    is_held[held] = True
    allowed = ~train if pool is None else (~train & pool) | is_held
    candidates = np.flatnonzero(allowed)
    order = candidates[np.argsort(-values[candidates], kind="stable")]
    found = np.cumsum(is_held[order])
    curve = []
    for share in REACH_SHARES:
        k = max(1, int(share * len(order)))
        recall = float(found[k - 1]) / len(held)
        curve.append({"reach_share": share, "reach": k, "recall": round(recall, 4),
                      "lift": round(recall / (k / len(order)), 2)})  # fmt: skip
    return {"held_out": len(held), "candidates": len(order), "curve": curve, "ranking": order}


# -- the use case ----------------------------------------------------------------------


def create(
    store: Store,
    name: str,
    seed_segment: str,
    *,
    now: datetime,
    reach: int | None = None,
    accuracy: float | None = None,
    method: str = "weights",
    population: str = "all",
    random_seed: int = 7,
    policy: str = "unless_refused",
) -> Lookalike:
    """Train on the seed, evaluate on a held-out 20%, score everyone else, keep the top
    `reach` (or the smallest reach whose held-out recall reaches `accuracy`) as audience
    NAME, and create a segment NAME (`in lookalike "NAME"`) for exports and overlap.

    A lookalike finds people to advertise to: people whose consent does not allow
    advertising (under `policy`, `profiles/consent.py`) are neither seeds nor scored."""
    if (reach is None) == (accuracy is None):
        raise InvalidField(
            "give a reach (profiles) or an accuracy (0-1), one of them", field="reach"
        )
    # Its segment takes the same name: refused here, before anything is saved.
    service.check_name(name)
    if store.fetch_one("SELECT 1 FROM lookalikes WHERE name = ?", [name]) or store.fetch_one(
        "SELECT 1 FROM segments WHERE name = ?", [name]
    ):
        raise Conflict(f"{name!r} exists already (a lookalike or a segment); pick another name")
    seed_members = set(service.member_ids(store, seed_segment))
    data = features(store, now)
    consenting = advertising_allowed(store, data.profile_ids, policy)
    pool = in_population(store, data.profile_ids, population) & consenting
    if population != "all":
        # Only what the population can have: otherwise the seed's known-customer features
        # (e-mail, CRM) would make the held-out seed outrank every anonymous visitor and the
        # evaluation would flatter the model.
        present = np.asarray(data.counts[pool].getnnz(axis=0)).ravel() > 0
        columns = np.flatnonzero(present)
        data = Features(data.profile_ids, [data.names[i] for i in columns],
                        data.counts[:, columns].tocsr())  # fmt: skip
    seed = np.array([p in seed_members for p in data.profile_ids], dtype=bool) & consenting
    if seed.sum() < 10:
        raise InvalidField(
            f"seed segment {seed_segment!r} has {int(seed.sum())} members with data; a "
            "lookalike needs at least 10",
            field="seed",
            value=seed_segment,
        )
    rng = np.random.default_rng(random_seed)
    evaluation = holdout_curve(method, data, seed, rng, pool=pool)
    evaluation.pop("ranking")
    if reach is None:
        assert accuracy is not None
        chosen = next(
            (p for p in evaluation["curve"] if p["recall"] >= accuracy), evaluation["curve"][-1]
        )
        reach = int(chosen["reach"])
    values, explained, model = scores(method, data, seed, rng)
    candidates = np.flatnonzero(~seed & pool)
    ranked = candidates[np.argsort(-values[candidates], kind="stable")]
    top = ranked[:reach]
    report: dict[str, Any] = {
        "seed": seed_segment, "seed_size": int(seed.sum()), "method": method,
        "population": population, "profiles_scored": len(data.profile_ids),
        "features": len(data.names), "reach": len(top), "weights": explained,
        "evaluation": evaluation,
    }  # fmt: skip
    with store.transaction():
        store.execute(
            "INSERT INTO lookalikes VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                seed_segment,
                method,
                population,
                len(top),
                now,
                orjson.dumps({**report, "model": model.stored()}).decode(),
            ],
        )
        # Every candidate with its score and rank: the audience is the first `reach`.
        store.execute(
            "INSERT INTO lookalike_members SELECT ?, unnest(?), unnest(?), unnest(?)",
            [
                name,
                [data.profile_ids[i] for i in ranked],
                [float(values[i]) for i in ranked],
                list(range(1, len(ranked) + 1)),
            ],
        )
    service.create(store, name, f'in lookalike "{name}"', set(), now=now)
    return Lookalike(name=name, **report)


def set_reach(store: Store, name: str, reach: int, now: datetime) -> Lookalike:
    """Change how many of the ranked profiles the audience keeps (its segment follows)."""
    get(store, name)
    if reach < 1:
        raise InvalidField(f"reach {reach} must be at least 1", field="reach", value=reach)
    ranked = store.fetch_one("SELECT count(*) FROM lookalike_members WHERE lookalike = ?", [name])
    reach = min(reach, ranked[0] if ranked else 0)
    report = _report(store, name)  # with its model
    report["reach"] = reach
    store.execute(
        "UPDATE lookalikes SET reach = ?, report = ? WHERE name = ?",
        [reach, orjson.dumps(report).decode(), name],
    )
    service.evaluate(store, name, now=now)
    return get(store, name)


def scores_of(store: Store, name: str, limit: int = 100) -> list[Score]:
    """The best-scored candidates, with rank and whether they are in the audience."""
    get(store, name)
    rows = store.fetch_dicts(
        "SELECT m.profile_id, m.score, m.rank, m.rank <= l.reach AS in_audience "
        "FROM lookalike_members m JOIN lookalikes l ON l.name = m.lookalike "
        "WHERE m.lookalike = ? ORDER BY m.rank LIMIT ?",
        [name, limit],
    )
    return [Score(**row) for row in rows]


def get(store: Store, name: str) -> Lookalike:
    report = _report(store, name)
    report.pop("model", None)  # the coefficients: for scoring elsewhere, not the answer
    return Lookalike(name=name, **report)


def _report(store: Store, name: str) -> dict[str, Any]:
    row = store.fetch_one("SELECT report FROM lookalikes WHERE name = ?", [name])
    if row is None:
        raise NotFound(f"no lookalike named {name!r}")
    report: dict[str, Any] = orjson.loads(row[0])
    return report


def list_lookalikes(store: Store) -> list[LookalikeSummary]:
    rows = store.fetch_dicts(
        "SELECT name, seed, method, population, reach, created_at FROM lookalikes ORDER BY name"
    )
    return [LookalikeSummary(**row) for row in rows]


def delete(store: Store, name: str) -> None:
    get(store, name)
    service.delete(store, name)
    with store.transaction():
        store.execute("DELETE FROM lookalike_members WHERE lookalike = ?", [name])
        store.execute("DELETE FROM lookalikes WHERE name = ?", [name])
