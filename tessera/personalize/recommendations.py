"""Recommendations: train the item-to-item model from the event log, store it, recommend.

`train` reads every interaction (`interactions.py`), builds the model (`itemsim.py`) with
popularity overall, per category and per segment, and replaces the stored model in one
transaction. `recommend` answers for one person from the stored model and their history;
the decision API answers from the same model held in memory (`decisions.Personalizer`).
Never recommended: a product the person bought in the last
TESSERA_RECOMMENDATIONS_EXCLUDE_BOUGHT_DAYS days, nor one the catalogue marks unavailable
or retired.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tessera.catalog.keys import ProductKeys
from tessera.context import Context
from tessera.errors import InvalidField
from tessera.events.timestamps import iso_utc, utc_now
from tessera.identity import lookup
from tessera.personalize import interactions, itemsim, products
from tessera.personalize.itemsim import Interaction, ItemModel, Product
from tessera.results import Result
from tessera.store import Store

MAX_RECOMMENDATIONS = 50
_DAY = 86_400.0


class Trained(Result):
    """A model just trained: how much it learnt from, and how long it took."""

    model_id: str
    trained_at: str | None
    people: int
    products: int
    interactions: int
    neighbour_pairs: int
    seconds: float


class RecommendedProduct(Result):
    product_id: str
    name: str | None
    category: str | None
    price: float | None
    score: float
    reason: str
    url: str | None = None
    image_url: str | None = None


class ModelStatus(Result):
    """The stored model (None before the first training) and the most popular products."""

    model: Trained | None
    popular: list[RecommendedProduct]


class Recommendations(Result):
    """Products for one person, best first, each with the reason."""

    profile_id: str | None
    items: list[RecommendedProduct]


@dataclass
class History:
    """One person's interests (product → weight) and when they last bought each product."""

    weights: dict[str, float] = field(default_factory=dict)
    bought: dict[str, float] = field(default_factory=dict)

    def add(self, item: Interaction) -> None:
        self.weights[item.product] = self.weights.get(item.product, 0.0) + itemsim.WEIGHTS.get(
            item.kind, 1.0
        )
        if item.kind == "purchase":
            self.bought[item.product] = max(self.bought.get(item.product, 0.0), item.at)

    def recently_bought(self, now: float, days: int) -> set[str]:
        if days <= 0:
            return set()
        since = now - days * _DAY
        return {product for product, at in self.bought.items() if at >= since}


def histories(found: list[Interaction]) -> dict[str, History]:
    people: dict[str, History] = defaultdict(History)
    for item in found:
        people[item.person].add(item)
    return dict(people)


def train(context: Context) -> Trained:
    """Train the model on the whole event log and store it (replacing the last one)."""
    started = time.perf_counter()
    store = context.store
    read = interactions.read(store, products=ProductKeys.of_settings(context.settings))
    people = histories(read.interactions)
    model = itemsim.train(
        {person: history.weights for person, history in people.items()},
        neighbours=context.settings.recommendations_neighbours,
        segments=_segment_members(store, set(people)),
        products=read.products,
    )
    seconds = time.perf_counter() - started
    trained = Trained(
        model_id=str(uuid.uuid4()),
        trained_at=iso_utc(utc_now()),
        people=len(people),
        products=len(model.products),
        interactions=len(read.interactions),
        neighbour_pairs=sum(len(n) for n in model.neighbours.values()),
        seconds=round(seconds, 3),
    )
    save(store, model, trained)
    return trained


def _segment_members(store: Store, people: set[str]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = defaultdict(list)
    for name, profile_id in store.fetch_all(
        "SELECT s.name, m.profile_id FROM segment_members m JOIN segments s ON s.id = m.segment_id "
        "WHERE m.left_at IS NULL"
    ):
        if profile_id in people:
            members[name].append(profile_id)
    return dict(members)


def save(store: Store, model: ItemModel, trained: Trained) -> None:
    neighbours = [
        (product, neighbour, score)
        for product, found in model.neighbours.items()
        for neighbour, score in found
    ]
    popular = [
        (scope, product, score)
        for scope, found in model.popular.items()
        for product, score in found
    ]
    described = [(p.product_id, p.name, p.category, p.price, 0) for p in model.products.values()]
    with store.transaction():
        for table in ("recommendation_models", "recommendation_neighbours",
                      "recommendation_popular", "recommendation_products"):  # fmt: skip
            store.execute(f"DELETE FROM {table}")
        store.execute(
            "INSERT INTO recommendation_models VALUES (?, ?, ?, ?, ?, ?)",
            [trained.model_id, utc_now(), trained.people, trained.products,
             trained.interactions, trained.seconds],
        )  # fmt: skip
        _insert(store, "recommendation_neighbours", ["product_id", "neighbour_id", "score"],
                neighbours)  # fmt: skip
        _insert(store, "recommendation_popular", ["scope", "product_id", "score"], popular)
        _insert(store, "recommendation_products",
                ["product_id", "name", "category", "price", "interactions"], described)  # fmt: skip


def _insert(store: Store, table: str, columns: list[str], rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    values = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
    selected = ", ".join(f"unnest(${name})" for name in columns)
    store.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selected}", values)


def load(store: Store) -> ItemModel:
    """The stored model (empty before the first training)."""
    model = ItemModel()
    for product_id, name, category, price in store.fetch_all(
        "SELECT product_id, name, category, price FROM recommendation_products"
    ):
        model.products[product_id] = Product(product_id, name, category, price)
    for product_id, neighbour, score in store.fetch_all(
        "SELECT product_id, neighbour_id, score FROM recommendation_neighbours "
        "ORDER BY product_id, score DESC, neighbour_id"
    ):
        model.neighbours.setdefault(product_id, []).append((neighbour, score))
    for scope, product_id, score in store.fetch_all(
        "SELECT scope, product_id, score FROM recommendation_popular "
        "ORDER BY scope, score DESC, product_id"
    ):
        model.popular.setdefault(scope, []).append((product_id, score))
    return model


def status(context: Context) -> ModelStatus:
    row = context.store.fetch_one(
        "SELECT id, trained_at, people, products, interactions, seconds "
        "FROM recommendation_models ORDER BY trained_at DESC LIMIT 1"
    )
    model = load(context.store)
    pairs = sum(len(found) for found in model.neighbours.values())
    trained = (
        Trained(
            model_id=row[0],
            trained_at=iso_utc(row[1]),
            people=row[2],
            products=row[3],
            interactions=row[4],
            neighbour_pairs=pairs,
            seconds=row[5],
        )
        if row
        else None
    )
    popular = [
        itemsim.Recommended(product, 0.0, "popular overall")
        for product, _ in model.popular.get(itemsim.ALL, [])[:10]
    ]
    return ModelStatus(model=trained, popular=described(context.store, model, popular))


def check_count(n: int) -> int:
    if not 1 <= n <= MAX_RECOMMENDATIONS:
        raise InvalidField(
            f"n {n!r} must be between 1 and {MAX_RECOMMENDATIONS}", field="n", value=n
        )
    return n


def recommend(context: Context, reference: str, n: int = 10) -> Recommendations:
    """The `n` best products for the person `reference` names (`TYPE:VALUE` or a profile
    id), from the stored model and their history in the event log."""
    check_count(n)
    store = context.store
    profile_id = lookup.lookup(
        store, reference, context.settings.default_region, context.pipeline.find_in_memory
    )
    read = interactions.read(
        store, profiles=[profile_id], products=ProductKeys.of_settings(context.settings)
    )
    history = histories(read.interactions).get(profile_id, History())
    segments = [
        f"segment:{row[0]}"
        for row in store.fetch_all(
            "SELECT s.name FROM segment_members m JOIN segments s ON s.id = m.segment_id "
            "WHERE m.profile_id = ? AND m.left_at IS NULL ORDER BY s.name",
            [profile_id],
        )
    ]
    model = load(store)
    exclude = history.recently_bought(
        time.time(), context.settings.recommendations_exclude_bought_days
    ) | products.unavailable_products(store)
    found = itemsim.recommend(model, history.weights, n=n, exclude=exclude, scopes=segments)
    return Recommendations(profile_id=profile_id, items=described(store, model, found))


def described(
    store: Store, model: ItemModel, found: list[itemsim.Recommended]
) -> list[RecommendedProduct]:
    """Recommended products with what the catalogue (or else the events) says of them."""
    catalogue = products.product_details(store, [item.product_id for item in found])
    return [as_product(model, item, catalogue.get(item.product_id)) for item in found]


def as_product(
    model: ItemModel, item: itemsim.Recommended, catalogue: dict[str, object] | None = None
) -> RecommendedProduct:
    seen = model.products.get(item.product_id, Product(item.product_id))
    details = catalogue or {}

    def text(key: str, fallback: str | None) -> str | None:
        value = details.get(key)
        return str(value) if value is not None else fallback

    price = details.get("price")
    return RecommendedProduct.model_construct(  # typed values: no validation on the hot path
        product_id=item.product_id,
        name=text("name", seen.name),
        category=text("category", seen.category),
        price=float(price) if isinstance(price, int | float) else seen.price,
        score=item.score,
        reason=item.reason,
        url=text("url", None),
        image_url=text("image_url", None),
    )
