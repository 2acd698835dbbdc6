"""Best channel and time, and loyalty (issue 14), pure: the smoothing toward the population,
the fallback, the hours of the week, the longest category prefix, the tiers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.errors import InvalidField
from tessera.profiles import engagement, loyalty


def test_the_best_channel_leans_on_the_population_when_history_is_thin() -> None:
    prior = {"email": 0.7, "web": 0.3}
    assert engagement.best({"web": 1}, prior) == "email"  # one visit is not enough
    assert engagement.best({"web": 20, "email": 1}, prior) == "web"
    assert engagement.best({}, prior) == "email"  # nothing: the population's best
    assert engagement.best({}, {}) is None


_HOURS = st.sampled_from([str(h) for h in range(0, 168, 7)] + ["1", "2", "10", "100"])


@given(
    counts=st.dictionaries(_HOURS, st.integers(1, 5), max_size=6),
    # small integer weights: many exact ties, the case the shortcut must get right
    weights=st.dictionaries(_HOURS, st.integers(1, 4), min_size=0, max_size=20),
)
def test_the_shortcut_over_the_ranked_prior_picks_what_scoring_every_key_picks(
    counts: dict[str, int], weights: dict[str, int]
) -> None:
    total = sum(weights.values())
    prior = {key: weight / total for key, weight in weights.items()}
    order = engagement.ranking(prior)
    assert engagement.best(counts, prior, order) == engagement.best(counts, prior)


def test_derived_traits_for_everyone_with_engagement() -> None:
    values = {
        "a": {"engagement_by_channel": {"email": 9}, "engagement_by_hour": {"42": 9}},
        "b": {"engagement_by_channel": {"web": 1}, "engagement_by_hour": {"0": 1}},
        "c": {"order_count": 1},
    }
    derived = engagement.derive(values)
    assert set(derived) == {"a", "b"}
    assert derived["a"] == {
        "best_channel": "email", "best_hour_of_week": 42, "best_time": "Tuesday 18:00 UTC",
    }  # fmt: skip
    assert derived["b"]["best_channel"] == "email"  # shrunk toward what everyone does


def test_hours_spread_to_their_neighbours_round_the_week() -> None:
    assert engagement.spread_hours({"0": 2}) == {"0": 2.0, "167": 1.0, "1": 1.0}
    assert engagement.time_of(167) == "Sunday 23:00 UTC"


RULES = """
points_per_euro: {default: 1, Sport: 2, "Sport > Running > Shoes": 3}
tiers: {Bronze: 0, Silver: 500, Gold: 2000}
"""


def test_points_use_the_longest_matching_category_and_tiers_the_highest_reached() -> None:
    rules = loyalty.parse(RULES)
    assert rules.rate("Sport > Running > Shoes") == 3
    assert rules.rate("Sport > Running") == 2
    assert rules.rate("Sportswear") == 1  # a prefix is a whole level
    spend = {"Sport > Running > Shoes": 100.0, "Sport > Tennis": 50.0, "Home": 10.5}
    assert rules.points(spend) == 300 + 100 + 10
    assert loyalty.derive(rules, {"loyalty_spend": spend}) == {
        "loyalty_points": 410, "loyalty_tier": "Bronze",
    }  # fmt: skip
    assert rules.tier(2000) == "Gold"
    assert loyalty.derive(rules, {"order_count": 2}) == {}  # no catalogued purchase
    assert loyalty.derive(None, {"loyalty_spend": spend}) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers: {}", "tiers: Value error, name at least one tier"),
        ("points_per_euro: {Sport: -1}\ntiers: {A: 0}", "must be from 0 to 1000"),
        ("tiers: {A: 0}\nbonus: 3", "bonus: Extra inputs are not permitted"),
        ("[1]", "loyalty rules are a mapping"),
        ("tiers: [", "not valid YAML"),
    ],
)
def test_bad_rules_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidField, match=message.replace("(", r"\(")):
        loyalty.parse(text)
