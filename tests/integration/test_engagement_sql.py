"""Best channel and time in SQL (engagement.DERIVED_SQL) equal their definition in Python
(engagement.derive) on random logs, on a real DuckDB: people on several channels, at
random hours of the week, the prior of everyone, the hours spread to their neighbours."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.profiles import catalogue, engagement
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import send

CHANNELS = ("web", "mobile", "email", "pos")
MONDAY = datetime(2026, 11, 2)


@given(
    events=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(CHANNELS), st.integers(0, 167)),
        min_size=1,
        max_size=30,
    )
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_best_channel_and_time_in_sql_equal_their_definition(
    tmp_path_factory: Any, events: list[tuple[int, str, int]]
) -> None:
    folder: Path = tmp_path_factory.mktemp("engagement")
    runtime = Runtime.open(Settings(data_dir=folder, admin_token="t"))
    try:
        for channel in CHANNELS:
            runtime.sources.create(channel, channel)
        for i, (person, channel, hour) in enumerate(events):
            moment = MONDAY + timedelta(hours=hour, minutes=i % 60)
            message = {"type": "track", "event": "Seen", "userId": f"u{person}",
                       "messageId": f"m{i}", "timestamp": moment.isoformat() + "Z"}  # fmt: skip
            send(runtime, [message], source=channel)
        runtime.pipeline.process(sweep=False)
        now = MONDAY + timedelta(days=8)
        rows = catalogue.recompute(runtime.store, catalogue.definitions(runtime.store), now)
        values: dict[str, dict[str, Any]] = {}
        for profile, name, value in rows:
            values.setdefault(profile, {})[name] = orjson.loads(value) if value else None
        expected = engagement.derive(values)
        assert expected, "everyone has engagement"
        for profile, derived in expected.items():
            assert {n: values[profile][n] for n in engagement.NAMES} == derived, profile
    finally:
        runtime.close()
