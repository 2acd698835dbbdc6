"""RFM quintiles ranked by numpy (`aggregates.rfm_tiles`) equal SQL's ntile(5) ranked by
Python's sort (ties by profile id), and two refreshes' tiles compared without a dict per
profile find exactly the profiles whose scores differ."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tessera.profiles.aggregates import ntiles, rfm, rfm_tiles
from tessera.profiles.computed import RFM_NAMES

ORDERER = st.fixed_dictionaries({
    "order_count": st.sampled_from([0, 1, 2, 3, None]),
    "days_since_last_order": st.sampled_from([0, 1, 5, 5.5, 30]),
    "total_revenue": st.sampled_from([None, 0, 10, 10.0, 99.5, 1e6, -3]),
})  # fmt: skip
VALUES = st.dictionaries(
    st.text(st.sampled_from("prfaZé_0123"), min_size=1, max_size=6),
    st.one_of(ORDERER, st.just({"page_views": 3})),
    max_size=40,
)


def _reference(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    orders = [(p, t["days_since_last_order"], t["order_count"], t.get("total_revenue") or 0.0)
              for p, t in values.items() if t.get("order_count")]  # fmt: skip
    scores: dict[str, dict[str, Any]] = {p: {} for p, *_ in orders}
    for name, ranked in (
        (RFM_NAMES[0], sorted(orders, key=lambda o: (-o[1], o[0]))),
        (RFM_NAMES[1], sorted(orders, key=lambda o: (o[2], o[0]))),
        (RFM_NAMES[2], sorted(orders, key=lambda o: (o[3], o[0]))),
    ):
        for tile, (profile, *_) in zip(ntiles(len(ranked), 5), ranked, strict=True):
            scores[profile][name] = tile
    for score in scores.values():
        score[RFM_NAMES[3]] = "".join(str(score[n]) for n in RFM_NAMES[:3])
    return scores


@given(values=VALUES, kept=st.lists(st.booleans(), min_size=40, max_size=40))
def test_numpy_tiles_equal_the_sorted_reference_and_find_what_changed(
    values: dict[str, dict[str, Any]], kept: list[bool]
) -> None:
    assert rfm(values) == _reference(values)
    later = {p: t for (p, t), keep in zip(values.items(), kept, strict=False) if keep}
    before, after = rfm(values), rfm(later)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert rfm_tiles(later).changed_since(rfm_tiles(values)) == changed
    tiles = rfm_tiles(values)
    some = set(list(values)[::3]) | {"absent"}
    assert tiles.scores(tiles.rows_of(some)) == {p: s for p, s in before.items() if p in some}
