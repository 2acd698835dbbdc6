"""The refresh's best channel and time, valued only for the people whose answer can have
changed (engagement_refresh.evaluate), equal everyone's valued again, on a real DuckDB.

Random rounds of events: people on several channels at random hours, anonymous visitors
whose profiles merge into known ones when one event carries both ids, now and then an
event deleted from the log (as retention does). After each round the answers kept (the
people valued this time, memory's for the others) equal the query over everyone, and
its best channel and time equal `engagement.DERIVED_SQL`'s, written apart."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.profiles import engagement, engagement_refresh
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import send

CHANNELS = ("web", "mobile", "email", "pos")
MONDAY = datetime(2026, 11, 2)

#: (person, known or anonymous or both, channel, hour of the week)
EVENT = st.tuples(
    st.integers(0, 7),
    st.sampled_from(("user", "anonymous", "both")),
    st.sampled_from(CHANNELS),
    st.integers(0, 167),
)
ROUND = st.tuples(st.lists(EVENT, min_size=1, max_size=12), st.booleans())


def _message(i: int, person: int, ids: str, hour: int) -> dict[str, Any]:
    moment = MONDAY + timedelta(hours=hour, minutes=i % 60)
    message: dict[str, Any] = {"type": "track", "event": "Seen", "messageId": f"m{i}",
                               "timestamp": moment.isoformat() + "Z"}  # fmt: skip
    if ids in ("user", "both"):
        message["userId"] = f"u{person}"
    if ids in ("anonymous", "both"):
        # the anonymous id of the next person: "both" merges two people's profiles
        message["anonymousId"] = f"a{(person + 1) % 8 if ids == 'both' else person}"
    return message


@given(rounds=st.lists(ROUND, min_size=2, max_size=6))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_valuing_only_who_can_have_changed_equals_valuing_everyone(
    tmp_path_factory: Any, rounds: list[tuple[list[tuple[int, str, str, int]], bool]]
) -> None:
    folder: Path = tmp_path_factory.mktemp("engaged")
    runtime = Runtime.open(Settings(data_dir=folder, admin_token="t"))
    # Small populations are mostly near ties: never fall back to everyone for being many.
    share, engagement_refresh._EVERYONE_SHARE = engagement_refresh._EVERYONE_SHARE, 1e9
    try:
        for channel in CHANNELS:
            runtime.sources.create(channel, channel)
        store, tracked = runtime.store, None
        kept: dict[str, dict[str, Any]] = {}
        n = incremental = 0
        for events, delete in rounds:
            for person, ids, channel, hour in events:
                send(runtime, [_message(n, person, ids, hour)], source=channel)
                n += 1
            runtime.pipeline.process(sweep=False)
            if delete:  # retention deleting the oldest event: counts fall
                store.execute("DELETE FROM events WHERE seq = (SELECT min(seq) FROM events)")
            evaluated = engagement_refresh.evaluate(store, tracked)
            incremental += not evaluated.everyone
            kept = evaluated.values if evaluated.everyone else {**kept, **evaluated.values}
            everyone = engagement_refresh.evaluate(store, None).values
            assert {p: kept.get(p) for p in everyone} == everyone
            derived = {p: dict(zip(engagement.NAMES, best, strict=True))
                       for p, *best in store.fetch_all(engagement.DERIVED_SQL)}  # fmt: skip
            assert {p: {k: v[k] for k in engagement.NAMES} for p, v in everyone.items()} == derived
            tracked = evaluated.tracked
        if not any(delete for _, delete in rounds[1:]):
            assert incremental == len(rounds) - 1  # the first values everyone
    finally:
        engagement_refresh._EVERYONE_SHARE = share
        runtime.close()


def test_a_refresh_with_nothing_new_values_nobody(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(engagement_refresh, "_EVERYONE_SHARE", 1e9)  # three people
    runtime = Runtime.open(Settings(data_dir=tmp_path, admin_token="t"))
    try:
        runtime.sources.create("web", "web")
        send(runtime, [_message(i, i % 3, "user", i * 7) for i in range(9)], source="web")
        runtime.pipeline.process(sweep=False)
        first = engagement_refresh.evaluate(runtime.store, None)
        again = engagement_refresh.evaluate(runtime.store, first.tracked)
        assert first.everyone and len(first.values) == 3
        assert not again.everyone and again.values == {}
        send(runtime, [_message(9, 1, "user", 40)], source="web")
        runtime.pipeline.process(sweep=False)
        touched = engagement_refresh.evaluate(runtime.store, again.tracked)
        assert not touched.everyone and "u1" in str(runtime.store.fetch_all(
            "SELECT value FROM identities WHERE profile_id IN (SELECT unnest(?))",
            [sorted(touched.values)]))  # fmt: skip
    finally:
        runtime.close()


def test_the_drift_counts_keys_neither_prior_has() -> None:
    # The first key after none: every change is positive, and a person compared with a
    # key nobody has (share 0 before and after) sees the gap move by the whole change.
    assert engagement_refresh._drift({}, {"web": 1.0}) == 1.0
    assert engagement_refresh._drift({"web": 0.5, "pos": 0.5}, {"web": 0.6, "pos": 0.4}) == (
        0.6 - 0.5
    ) - (0.4 - 0.5)
    assert engagement_refresh._drift({}, {}) == 0.0
