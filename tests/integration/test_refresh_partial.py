"""A light refresh builds only the profiles whose values can differ from memory's
(`refresh.Prior`); what it changes in memory equals what building every profile's values
again changes, on a real DuckDB.

Random rounds: people ordering (RFM scores and loyalty points move for people no event
named, as the population's quintiles move) and browsing on several channels, anonymous
visitors merging into known people, now and then the loyalty rules changed or a round of
batches run while the refresh computes (the loop's `begin_refresh` / `finish_refresh`)."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.pipeline import refresh
from tessera.profiles import loyalty
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import send

CHANNELS = ("web", "mobile", "email")
MONDAY = datetime(2026, 11, 2)
RULES = ("points_per_euro: {default: 1}\ntiers: {Bronze: 0, Silver: 150, Gold: 600}",
         "points_per_euro: {default: 2}\ntiers: {Bronze: 0, Gold: 300}")  # fmt: skip

#: (person, known or anonymous or both, channel, an order's revenue or 0 for a page view)
EVENT = st.tuples(
    st.integers(0, 9),
    st.sampled_from(("user", "user", "anonymous", "both")),
    st.sampled_from(CHANNELS),
    st.sampled_from((0, 0, 20, 75, 300)),
)
#: (events, events sent while the refresh computes, new loyalty rules)
ROUND = st.tuples(
    st.lists(EVENT, min_size=1, max_size=10),
    st.lists(EVENT, max_size=4),
    st.sampled_from((None, None, None, 0, 1)),
)


def _message(i: int, person: int, ids: str, revenue: int) -> dict[str, Any]:
    moment = MONDAY + timedelta(hours=i % 150, minutes=i % 60)
    message: dict[str, Any] = {"type": "track", "messageId": f"m{i}",
                               "timestamp": moment.isoformat() + "Z"}  # fmt: skip
    if revenue:
        message |= {"event": "Order Completed", "properties": {"revenue": revenue}}
    else:
        message["event"] = "Page Viewed"
    if ids in ("user", "both"):
        message["userId"] = f"u{person}"
    if ids in ("anonymous", "both"):
        # the anonymous id of the next person: "both" merges two people's profiles
        message["anonymousId"] = f"a{(person + 1) % 10 if ids == 'both' else person}"
    return message


@given(rounds=st.lists(ROUND, min_size=2, max_size=5))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_building_only_the_profiles_that_can_differ_changes_what_everyone_would(
    tmp_path_factory: Any, rounds: list[tuple[list[Any], list[Any], int | None]]
) -> None:
    folder: Path = tmp_path_factory.mktemp("partial")
    runtime = Runtime.open(Settings(data_dir=folder, admin_token="t"))
    pipeline = runtime.pipeline
    partial = 0
    try:
        for channel in CHANNELS:
            runtime.sources.create(channel, channel)
        n = 0

        def sent(events: list[Any]) -> None:
            nonlocal n
            for person, ids, channel, revenue in events:
                send(runtime, [_message(n, person, ids, revenue)], source=channel)
                n += 1
            pipeline.process(sweep=False)

        for events, meanwhile, rules in rounds:
            sent(events)
            if rules is not None:
                loyalty.load(runtime.store, loyalty.parse(RULES[rules]))
            with pipeline._lock:
                snapshot = pipeline._snapshot(False)
            everyone = dataclasses.replace(
                snapshot, prior=None, tracked=copy.deepcopy(snapshot.tracked),
                touched=snapshot.touched, removed=snapshot.removed,
            )  # fmt: skip
            pipeline._watching = snapshot  # the batches below record what they touch
            built = refresh.compute(runtime.store, snapshot, pipeline.products)
            rebuilt = refresh.compute(runtime.store, everyone, pipeline.products)
            sent(meanwhile)
            with pipeline._lock:
                pipeline._watching = None
                memory = copy.deepcopy(pipeline.computed)
                assert refresh.changes(memory, built) == refresh.changes(memory, rebuilt)
                partial += built.partial
                pipeline._apply_refresh(built)
        assert partial >= 1 or all(r is not None for _, _, r in rounds[1:])
    finally:
        runtime.close()
