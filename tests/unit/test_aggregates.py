"""The computed-trait aggregates (profiles/aggregates.py), pure: buckets, windows, merges."""

from __future__ import annotations

from datetime import UTC, datetime

from tessera.profiles.aggregates import (
    DAY_MICROSECONDS,
    Aggregates,
    day_number,
    ntiles,
    rfm,
)
from tessera.profiles.computed import ComputedTrait

TODAY = 20_000  # a UTC day number


def at(day: int, hour: int = 12) -> int:
    return day * DAY_MICROSECONDS + hour * 3_600_000_000


def test_ntiles_give_the_first_tiles_one_row_more_as_sql_does() -> None:
    assert ntiles(7, 5) == [1, 1, 2, 2, 3, 4, 5]
    assert ntiles(3, 5) == [1, 2, 3]
    assert ntiles(0, 5) == []


def test_day_number_reads_naive_times_as_utc() -> None:
    assert day_number(datetime(1970, 1, 2, 23, 59)) == 1
    assert day_number(datetime(1970, 1, 2, 23, 59, tzinfo=UTC)) == 1


def test_a_window_holds_the_days_from_n_days_before_today_and_slides_at_midnight() -> None:
    aggregates = Aggregates([ComputedTrait("recent", "count", window_days=2)])
    for day in (TODAY - 3, TODAY - 2, TODAY - 1, TODAY):
        aggregates.add("p", 0, at(day), day, None)
    assert aggregates.values("p", TODAY) == {"recent": 3}
    assert aggregates.values("p", TODAY + 1) == {"recent": 2}
    assert aggregates.values("p", TODAY + 3) == {}  # no event in the window: no value


def test_pruned_buckets_and_events_too_old_for_the_window_are_not_kept() -> None:
    aggregates = Aggregates([ComputedTrait("recent", "count", window_days=2)])
    aggregates.add("p", 0, at(TODAY - 30), 1, None)
    aggregates.prune(TODAY)
    assert aggregates.profiles["p"] == {aggregates.keys[0]: {}}
    aggregates.add("p", 0, at(TODAY - 30), 2, None)  # late, and out of every window now
    assert aggregates.profiles["p"] == {aggregates.keys[0]: {}}


def test_first_and_last_go_by_event_time_then_seq_and_skip_missing_values() -> None:
    traits = [ComputedTrait("first", "first", property="x"),
              ComputedTrait("last", "last", property="x")]  # fmt: skip
    aggregates = Aggregates(traits)
    for index in (0, 1):
        aggregates.add("p", index, at(TODAY, 9), 5, "late-arrival-earliest")
        aggregates.add("p", index, at(TODAY, 8), 9, None)  # earlier, but no value
        aggregates.add("p", index, at(TODAY, 10), 1, "tie-lower-seq")
        aggregates.add("p", index, at(TODAY, 10), 2, "tie-higher-seq")
    assert aggregates.values("p", TODAY) == {
        "first": "late-arrival-earliest",
        "last": "tie-higher-seq",
    }


def test_most_frequent_breaks_a_tie_by_the_smallest_value() -> None:
    aggregates = Aggregates([ComputedTrait("favourite", "most_frequent", property="c")])
    for value in ("shoes", "hats", "shoes", "hats", None, None, None):
        aggregates.add("p", 0, at(TODAY), 1, value)
    assert aggregates.values("p", TODAY) == {"favourite": "hats"}


def test_merged_profiles_combine_every_function() -> None:
    traits = [
        ComputedTrait("n", "count"),
        ComputedTrait("total", "sum", property="r"),
        ComputedTrait("mean", "avg", property="r"),
        ComputedTrait("low", "min", property="r"),
        ComputedTrait("high", "max", property="r", window_days=7),
        ComputedTrait("kinds", "distinct_count", property="k"),
        ComputedTrait("since", "recency_days"),
    ]
    aggregates = Aggregates(traits)
    for profile, day, number, kind in (("a", TODAY - 1, 4.0, "x"), ("b", TODAY - 3, 10.0, "y"),
                                       ("b", TODAY - 20, 100.0, "x")):  # fmt: skip
        for index, trait in enumerate(traits):
            value = kind if trait.name == "kinds" else number
            aggregates.add(profile, index, at(day), 1, value)
    aggregates.merge("a", "b")
    assert "b" not in aggregates.profiles
    assert aggregates.values("a", TODAY) == {
        "n": 3, "total": 114.0, "mean": 38.0, "low": 4.0, "high": 10.0, "kinds": 2, "since": 1,
    }  # fmt: skip


def test_the_state_survives_the_store_as_json() -> None:
    traits = [ComputedTrait("favourite", "most_frequent", property="c", window_days=3),
              ComputedTrait("last", "last", property="c")]  # fmt: skip
    aggregates = Aggregates(traits)
    for index in (0, 1):
        aggregates.add("p", index, at(TODAY), 4, "hats")
        aggregates.add("p", index, at(TODAY - 1), 3, "shoes")
    raw = aggregates.state_json("p")
    assert raw is not None
    restored = Aggregates(traits)
    restored.load_json("p", raw)
    assert restored.values("p", TODAY) == aggregates.values("p", TODAY)
    assert aggregates.state_json("nobody") is None


def test_rfm_scores_rank_ties_by_profile_id() -> None:
    values = {
        f"p{i}": {"order_count": 1, "total_revenue": 10.0, "days_since_last_order": 5}
        for i in range(5)
    }
    values["nobody"] = {"views": 3}  # no order: no score
    scores = rfm(values)
    assert set(scores) == {f"p{i}" for i in range(5)}
    assert [scores[f"p{i}"]["rfm_frequency"] for i in range(5)] == [1, 2, 3, 4, 5]
    assert scores["p0"]["rfm_segment"] == "111"
