"""Invariants of the pipeline, with hypothesis, on a real (in-memory) DuckDB.

- Processing the log in any split into batches gives the same state as a rebuild.
- Without conflicts (limits out of the way), any arrival order gives the same graph and
  the same traits: traits go by event time, not arrival.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import partition, send, snapshot

IDS = {
    "userId": [f"u{i}" for i in range(4)],
    "anonymousId": [f"a{i}" for i in range(6)],
    # the last of each cannot be an identifier: ledgered as dropped, once per profile
    "email": [*(f"e{i}@x.co" for i in range(4)), "e9@nowhere"],
    "phone": ["+33611111111", "+33622222222", "+33633333333", "+33 6"],
}


@st.composite
def messages(draw: st.DrawFn, index: int = 0) -> dict[str, Any]:
    anonymous = draw(st.sampled_from(IDS["anonymousId"]))
    message: dict[str, Any] = {
        "type": draw(st.sampled_from(["identify", "track"])),
        "anonymousId": anonymous,
        "event": "Viewed",
    }
    if draw(st.booleans()):
        message["userId"] = draw(st.sampled_from(IDS["userId"]))
    traits: dict[str, Any] = {}
    for key in ("email", "phone"):
        if draw(st.integers(0, 3)) == 0:
            traits[key] = draw(st.sampled_from(IDS[key]))
    if draw(st.booleans()):
        traits["city"] = draw(st.sampled_from(["Lyon", "Paris", "Nice"]))
    if traits:
        message["context"] = {"traits": traits}
    day = draw(st.integers(1, 28))
    message["timestamp"] = f"2024-03-{day:02d}T{draw(st.integers(0, 23)):02d}:00:00Z"
    return message


logs = st.lists(messages(), min_size=1, max_size=40)


def fresh(tmp: Path, **overrides: Any) -> Runtime:
    return Runtime.open(Settings(data_dir=tmp, admin_token="t", **overrides), in_memory=True)


@given(log=logs, cuts=st.lists(st.integers(1, 15), min_size=1, max_size=8))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_split_into_batches_equals_a_rebuild(
    tmp_path_factory: Any, log: list[dict[str, Any]], cuts: list[int]
) -> None:
    """Arrivals and batches interleave, and the process restarts after every batch, so
    the graph is reloaded from the file each time: what was persisted must suffice."""
    folder = tmp_path_factory.mktemp("split")
    settings_ = Settings(data_dir=folder, admin_token="t")
    sent = 0
    for cut in [*cuts, len(log)]:
        runtime = Runtime.open(settings_)
        try:
            chunk = log[sent : sent + cut]
            send(runtime, [dict(m, messageId=f"m{sent + i}") for i, m in enumerate(chunk)])
            sent += len(chunk)
            runtime.pipeline.process(max_events=cut)
        finally:
            runtime.close()
    runtime = Runtime.open(settings_)
    try:
        runtime.pipeline.process()
        incremental = snapshot(runtime)
        runtime.pipeline.rebuild()
        assert snapshot(runtime) == incremental
    finally:
        runtime.close()


@given(log=logs, order=st.randoms(use_true_random=False))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arrival_order_does_not_change_graph_or_traits(
    tmp_path_factory: Any, log: list[dict[str, Any]], order: Any
) -> None:
    no_limits = {"identity_rules": {k: {"limit": None} for k in ("user_id", "email", "phone")}}
    numbered = [dict(m, messageId=f"m{i}") for i, m in enumerate(log)]
    shuffled = list(numbered)
    order.shuffle(shuffled)
    results = []
    for arrival in (numbered, shuffled):
        runtime = fresh(tmp_path_factory.mktemp("order"), **no_limits)
        try:
            send(runtime, arrival)
            runtime.pipeline.process()
            traits = runtime.store.fetch_all(
                "SELECT s.traits, list(i.type || ':' || i.value ORDER BY i.type, i.value) "
                "FROM profile_summaries s JOIN profiles p ON p.profile_id = s.profile_id "
                "JOIN identities i ON coalesce((SELECT merged_into FROM profiles q "
                "WHERE q.profile_id = i.profile_id), i.profile_id) = s.profile_id "
                "GROUP BY s.profile_id, s.traits"
            )
            results.append((partition(runtime), sorted((t, tuple(i)) for t, i in traits)))
        finally:
            runtime.close()
    assert results[0] == results[1]
