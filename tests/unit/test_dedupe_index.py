"""The dedupe index answers as a set of every key added would, whatever the order of
additions and folds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.events.dedupe import DedupeIndex

_KEY = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(_KEY, max_size=40), max_size=30), probe=st.lists(_KEY))
def test_the_index_holds_exactly_the_keys_added(batches: list[list[int]], probe: list[int]) -> None:
    index, seen = DedupeIndex(), set()
    for i, batch in enumerate(batches):
        index.add_array(np.array(batch, dtype=np.uint64))
        seen.update(batch)
        if i % 7 == 6:
            index._fold()  # the large array rebuilt in the middle, as under load
    assert len(index) == len(seen)
    everything = sorted(seen) + probe
    assert index.contains(everything) == [key in seen for key in everything]
