"""The item-to-item model: pure functions over interactions, no store.

Item-based collaborative filtering (Sarwar et al., "Item-based collaborative filtering
recommendation algorithms", WWW 2001; Linden, Smith and York, "Amazon.com recommendations:
item-to-item collaborative filtering", IEEE Internet Computing 2003): two products are alike
when the same people view, add and buy both. Each person's interest in a product is the
log of their weighted interactions with it (a view 1, a basket add 2, a purchase 4), the
products are the columns of that people × products matrix, and the similarity of two
products is the cosine of their columns. Each product keeps its `neighbours` nearest.

A person is recommended the products most similar to what they did, weighted by how much
they did it; popularity (overall, per category, per segment) fills what is left, and is all
a person without history gets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: How much each kind of interaction says about a person's interest in a product.
WEIGHTS = {"view": 1.0, "add": 2.0, "purchase": 4.0}
ALL = "all"


@dataclass(frozen=True)
class Interaction:
    person: str
    product: str
    kind: str  # view, add or purchase
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str | None = None
    category: str | None = None
    price: float | None = None


@dataclass(frozen=True)
class Recommended:
    product_id: str
    score: float
    reason: str


@dataclass
class ItemModel:
    """Neighbours per product and popularity per scope (`all`, `category:X`, `segment:X`),
    each list best first."""

    neighbours: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    popular: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    _similar: dict[str, dict[str, float]] | None = field(default=None, repr=False)

    def similarity(self, product: str, other: str) -> float:
        """The stored similarity of two products (0 when not neighbours). Built on first
        use, once the model is complete (a model is not changed after training or loading)."""
        if self._similar is None:
            self._similar = {p: dict(found) for p, found in self.neighbours.items()}
        return self._similar.get(product, {}).get(other, 0.0)


def interests(interactions: Iterable[Interaction]) -> dict[str, dict[str, float]]:
    """Per person, per product: the summed weight of their interactions."""
    found: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for item in interactions:
        found[item.person][item.product] += WEIGHTS.get(item.kind, 1.0)
    return {person: dict(products) for person, products in found.items()}


def train(
    people: Mapping[str, Mapping[str, float]],
    *,
    neighbours: int = 50,
    segments: Mapping[str, Iterable[str]] | None = None,
    products: Mapping[str, Product] | None = None,
    popular_size: int = 100,
) -> ItemModel:
    """The model from each person's interests (`interests`); `segments` (name → member
    person ids) gives popularity per segment, `products` popularity per category."""
    # Imported here: scipy takes a few hundred ms to import, which every server start and
    # CLI command would otherwise pay for a model only training builds.
    from scipy import sparse

    catalogue = dict(products or {})
    index = sorted({p for items in people.values() for p in items})
    position = {product: i for i, product in enumerate(index)}
    rows: list[int] = []
    columns: list[int] = []
    values: list[float] = []
    for row, items in enumerate(people.values()):
        for product, weight in items.items():
            rows.append(row)
            columns.append(position[product])
            values.append(math.log1p(weight))
    model = ItemModel(products={p: catalogue.get(p, Product(p)) for p in index})
    if not index:
        return model
    matrix = sparse.csr_matrix(
        (np.array(values), (np.array(rows), np.array(columns))),
        shape=(len(people), len(index)),
    )
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    normalised = matrix @ sparse.diags(1.0 / norms)
    similarity = (normalised.T @ normalised).tocsr()
    similarity.setdiag(0)
    similarity.eliminate_zeros()
    for i, product in enumerate(index):
        start, end = similarity.indptr[i], similarity.indptr[i + 1]
        found = sorted(
            zip(similarity.indices[start:end], similarity.data[start:end], strict=True),
            key=lambda pair: (-pair[1], index[pair[0]]),
        )[:neighbours]
        model.neighbours[product] = [(index[j], round(float(s), 6)) for j, s in found]
    model.popular = popularity(people, catalogue, segments or {}, popular_size)
    return model


def popularity(
    people: Mapping[str, Mapping[str, float]],
    products: Mapping[str, Product],
    segments: Mapping[str, Iterable[str]],
    size: int,
) -> dict[str, list[tuple[str, float]]]:
    """Products by how many people showed interest (weighted by how much), overall, per
    category and per segment."""

    def ranked(members: Iterable[str], limit: int | None) -> list[tuple[str, float]]:
        totals: dict[str, float] = defaultdict(float)
        for person in members:
            for product, weight in people.get(person, {}).items():
                totals[product] += math.log1p(weight)
        return sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))[:limit]

    everything = ranked(people, None)
    found = {ALL: everything[:size]}
    for product, score in everything:
        category = products.get(product, Product(product)).category
        if category:
            scope = found.setdefault(f"category:{category}", [])
            if len(scope) < size:
                scope.append((product, score))
    for name, members in segments.items():
        ranking = ranked(members, size)
        if ranking:
            found[f"segment:{name}"] = ranking
    return found


def recommend(
    model: ItemModel,
    history: Mapping[str, float],
    *,
    n: int,
    exclude: set[str] | frozenset[str] = frozenset(),
    scopes: Iterable[str] = (),
) -> list[Recommended]:
    """The `n` best products for a person with this `history` (product → weight), none
    of them in `exclude`: the neighbours of what they did first, then the popular products
    of `scopes` in order (e.g. their segments, a category), then popular overall."""
    # Scores first, reasons only for the products chosen: the inner loop is the hot path
    # of every decision (history x neighbours), so it does one dict update and nothing else.
    strengths = {product: math.log1p(weight) for product, weight in history.items()}
    scores: dict[str, float] = {}
    for product, strength in strengths.items():
        for neighbour, similarity in model.neighbours.get(product, ()):
            scores[neighbour] = scores.get(neighbour, 0.0) + strength * similarity
    chosen: list[Recommended] = []
    taken: set[str] = set(exclude)
    for product, total in sorted(scores.items(), key=lambda pair: (-pair[1], pair[0])):
        if len(chosen) >= n:
            return chosen
        if product in taken:
            continue
        taken.add(product)
        like = max(strengths, key=lambda item: (strengths[item] * model.similarity(item, product),
                                                item))  # fmt: skip
        chosen.append(Recommended(product, round(total, 6), f"similar to {_named(model, like)}"))
    for scope in [*scopes, ALL]:
        for product, _score in model.popular.get(scope, ()):
            if len(chosen) >= n:
                return chosen
            if product in taken:
                continue
            taken.add(product)
            where = "overall" if scope == ALL else f"in {scope.replace(':', ' ', 1)}"
            chosen.append(Recommended(product, 0.0, f"popular {where}"))
    return chosen


def _named(model: ItemModel, product_id: str) -> str:
    product = model.products.get(product_id)
    name = product.name if product and product.name else None
    return f"{name} ({product_id})" if name else product_id


# -- evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    people: int
    hit_rate: float
    ndcg: float


def leave_last_purchase_out(
    interactions: list[Interaction],
) -> tuple[list[Interaction], dict[str, tuple[str, float]]]:
    """The time split of the evaluation: each person's last purchase is held out, with
    everything they did from that moment on (so nothing after it leaks into training).
    Returns the training interactions and, per person, the held-out product and time."""
    last: dict[str, tuple[float, str]] = {}
    for item in interactions:
        if item.kind == "purchase" and item.at >= last.get(item.person, (-math.inf, ""))[0]:
            last[item.person] = (item.at, item.product)
    training = [
        item for item in interactions if item.person not in last or item.at < last[item.person][0]
    ]
    return training, {person: (product, at) for person, (at, product) in last.items()}


def score(ranked: Mapping[str, list[str]], truth: Mapping[str, str], k: int = 10) -> Scores:
    """Hit rate at k and NDCG at k (one relevant product: 1/log2(rank + 1))."""
    hits = 0
    gain = 0.0
    for person, wanted in truth.items():
        top = ranked.get(person, [])[:k]
        if wanted in top:
            hits += 1
            gain += 1.0 / math.log2(top.index(wanted) + 2)
    count = len(truth)
    return Scores(count, hits / count if count else 0.0, gain / count if count else 0.0)
