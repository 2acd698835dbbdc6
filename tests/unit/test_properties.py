"""Invariants, with hypothesis: the dedupe index is a set; timestamps round-trip."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.events.dedupe import DedupeIndex
from tessera.events.timestamps import micros_to_datetime, parse_timestamp

keys = st.integers(min_value=0, max_value=2**64 - 1)


@given(st.lists(keys), st.lists(st.lists(keys)), st.lists(keys))
@settings(max_examples=200)
def test_dedupe_index_behaves_like_a_set(
    initial: list[int], additions: list[list[int]], probes: list[int]
) -> None:
    index, model = DedupeIndex(initial), set(initial)
    for batch in additions:
        index.add(batch)
        model.update(batch)
    assert index.contains(probes) == [p in model for p in probes]
    assert len(index) == len(model)


def test_dedupe_index_folds_large_additions() -> None:
    index = DedupeIndex([1, 2, 3])
    index.add(range(10, 60_010))
    assert index.contains([2, 10, 60_009, 60_010]) == [True, True, True, False]


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 1, 1)))
def test_timestamps_round_trip_through_micros(moment: datetime) -> None:
    text = moment.replace(tzinfo=UTC).isoformat()
    assert micros_to_datetime(parse_timestamp(text, "t")) == moment
