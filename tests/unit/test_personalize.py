"""Personalisation's pure parts: the strategies, the holdout, the item-to-item model, the
evaluation's time split."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tessera.catalog.keys import ProductKeys
from tessera.personalize import itemsim
from tessera.personalize.itemsim import Interaction
from tessera.personalize.recommendations import History
from tessera.personalize.strategies import HOLDOUT, Candidate, bucket, choose
from tessera.settings import Settings

OFFERS = [Candidate("a", 1, 1.0), Candidate("b", 5, 3.0), Candidate("c", 5, 1.0)]


def test_priority_picks_the_highest_and_breaks_ties_by_name() -> None:
    choice = choose("priority", OFFERS, key="prf_1", holdout_share=0.5)
    assert (choice.offer, choice.variant) == ("b", "priority")
    assert "highest priority (5) of 3 eligible" in choice.reason


def test_no_candidate_is_no_offer() -> None:
    assert choose("priority", [], key="prf_1", holdout_share=0.0).offer is None


def test_weighted_draws_in_proportion_to_the_weights() -> None:
    rng = random.Random(7)
    drawn = Counter(
        choose("weighted", OFFERS, key="k", holdout_share=0, rng=rng).offer for _ in range(5000)
    )
    assert abs(drawn["b"] / 5000 - 0.6) < 0.03
    assert abs(drawn["a"] / 5000 - 0.2) < 0.03


@given(st.text(min_size=1, max_size=40))
def test_the_experiment_is_deterministic_per_person(key: str) -> None:
    first = choose("experiment", OFFERS, key=key, holdout_share=0.2)
    again = choose("experiment", list(reversed(OFFERS)), key=key, holdout_share=0.2)
    assert first == again


def test_the_experiment_holds_out_its_share_and_splits_the_rest_by_weight() -> None:
    choices = [
        choose("experiment", OFFERS, key=f"prf_{n}", holdout_share=0.1) for n in range(20_000)
    ]
    held = sum(c.variant == HOLDOUT for c in choices)
    assert abs(held / 20_000 - 0.1) < 0.01
    assert all(c.offer is None for c in choices if c.variant == HOLDOUT)
    shown = Counter(c.offer for c in choices if c.offer)
    assert abs(shown["b"] / sum(shown.values()) - 0.6) < 0.02
    assert all(c.variant == c.offer for c in choices if c.offer)


def test_the_holdout_does_not_depend_on_which_offers_are_eligible() -> None:
    """A person held out stays held out whatever they become eligible for: the lift
    compares like with like."""
    keys = [f"prf_{n}" for n in range(2000)]
    held_one = {k for k in keys if choose("experiment", OFFERS[:1], key=k,
                                          holdout_share=0.3).variant == HOLDOUT}  # fmt: skip
    held_all = {k for k in keys if choose("experiment", OFFERS, key=k,
                                          holdout_share=0.3).variant == HOLDOUT}  # fmt: skip
    assert held_one == held_all


def test_bucket_is_stable_and_spread() -> None:
    assert bucket("prf_1", "x") == bucket("prf_1", "x")
    values = [bucket(f"prf_{n}", "x") for n in range(10_000)]
    assert min(values) >= 0 and max(values) < 1
    assert abs(sum(values) / len(values) - 0.5) < 0.02


def _people() -> dict[str, dict[str, float]]:
    # Runners buy shoes and socks together; readers buy books and lamps.
    people: dict[str, dict[str, float]] = {}
    for n in range(30):
        people[f"r{n}"] = {"shoes": 4.0, "socks": 2.0 + n % 3}
        people[f"b{n}"] = {"book": 4.0, "lamp": 1.0 + n % 2}
    people["both"] = {"shoes": 1.0, "book": 1.0}
    return people


def test_similar_products_are_those_the_same_people_like() -> None:
    model = itemsim.train(_people())
    assert model.neighbours["shoes"][0][0] == "socks"
    assert model.neighbours["book"][0][0] == "lamp"
    assert all(neighbour != product for product, found in model.neighbours.items()
               for neighbour, _ in found)  # fmt: skip


def test_similarity_is_symmetric() -> None:
    model = itemsim.train(_people())
    scores = {(p, n): s for p, found in model.neighbours.items() for n, s in found}
    for (product, neighbour), score in scores.items():
        assert abs(scores[(neighbour, product)] - score) < 1e-9


def test_recommend_never_returns_what_is_excluded_and_fills_with_popularity() -> None:
    model = itemsim.train(_people())
    found = itemsim.recommend(model, {"shoes": 1.0}, n=3, exclude={"socks"})
    ids = [r.product_id for r in found]
    assert "socks" not in ids and len(ids) == 3 and len(set(ids)) == 3
    assert found[-1].reason.startswith("popular")


def test_a_person_without_history_gets_the_popular_products_of_their_scope_first() -> None:
    model = itemsim.train(
        _people(), segments={"readers": [f"b{n}" for n in range(30)]},
        products={"book": itemsim.Product("book", category="books")},
    )  # fmt: skip
    found = itemsim.recommend(model, {}, n=2, scopes=["segment:readers"])
    assert {r.product_id for r in found} == {"book", "lamp"}
    assert found[0].reason == "popular in segment readers"
    assert itemsim.recommend(model, {}, n=1, scopes=["category:books"])[0].product_id == "book"


def test_recently_bought_follows_the_window() -> None:
    history = History()
    history.add(Interaction("p", "shoes", "purchase", 1000.0))
    history.add(Interaction("p", "socks", "view", 1000.0))
    day = 86_400.0
    assert history.recently_bought(1000.0 + 29 * day, 30) == {"shoes"}
    assert history.recently_bought(1000.0 + 31 * day, 30) == set()
    assert history.recently_bought(1000.0, 0) == set()


interactions = st.lists(
    st.builds(
        Interaction,
        person=st.sampled_from(["p1", "p2", "p3"]),
        product=st.sampled_from(["a", "b", "c", "d"]),
        kind=st.sampled_from(["view", "add", "purchase"]),
        at=st.integers(0, 50).map(float),
    ),
    max_size=40,
)


@given(interactions)
def test_the_time_split_leaks_nothing_from_the_held_out_purchase_on(
    found: list[Interaction],
) -> None:
    training, held_out = itemsim.leave_last_purchase_out(found)
    for person, (product, at) in held_out.items():
        assert any(i.person == person and i.product == product and i.kind == "purchase"
                   and i.at == at for i in found)  # fmt: skip
        assert not any(i.person == person and i.at >= at for i in training)
        later = [i for i in found if i.person == person and i.kind == "purchase" and i.at > at]
        assert not later
    assert all(i in found for i in training)


def test_score_counts_hits_and_discounts_by_rank() -> None:
    scores = itemsim.score({"p": ["x", "y"], "q": ["z"]}, {"p": "y", "q": "w"}, k=10)
    assert scores.hit_rate == 0.5
    assert abs(scores.ndcg - 0.5 * (1 / 1.5849625)) < 1e-6


def test_product_keys_read_the_first_path_present_in_the_order_listed() -> None:
    keys = ProductKeys(("product_id", "sku", "item.sku"))
    assert keys.of({"sku": "s-1", "product_id": "p-1"}) == "p-1"
    assert keys.of({"sku": 42}) == "42"
    assert keys.of({"product_id": "", "sku": "s-1"}) == "s-1"
    assert keys.of({"item": {"sku": "nested"}}) == "nested"
    assert keys.of({"product_id": True, "sku": {"a": 1}, "item": "flat"}) is None
    assert ProductKeys().of({"sku": "s-1"}) is None


def test_product_id_properties_refuse_what_is_not_a_path_of_names() -> None:
    with pytest.raises(ValidationError, match="PRODUCT_ID_PROPERTIES"):
        Settings(product_id_properties=["sku", "$.x"])
    with pytest.raises(ValidationError):
        Settings(product_id_properties=[])
    with pytest.raises(ValueError, match="dotted path"):
        ProductKeys(("a'b",))
    assert Settings(product_id_properties=["sku", "sku", "id"]).product_id_properties == [
        "sku", "id"
    ]  # fmt: skip


def test_the_call_centre_lists_an_orders_products_by_name_whatever_field_names_them() -> None:
    from tessera.catalog.keys import ProductKeys
    from tessera.personalize.callcentre import _orders

    def order(**properties: object) -> dict[str, object]:
        return {"type": "track", "event": "Order Completed", "timestamp": "2026-12-01T10:00:00Z",
                "source": "shops", "properties": properties}  # fmt: skip

    found = _orders(
        [
            order(product="Trail shoes", revenue=59.9),  # a till's receipt line
            order(products=[{"product_id": "sku-1", "name": "Socks"}, {"product_id": "sku-2"}]),
            order(product_id="sku-3"),
            order(revenue=10),  # names no product
        ],
        ProductKeys(),
    )
    assert [o.products for o in found] == [["Trail shoes"], ["Socks", "sku-2"], ["sku-3"], []]
