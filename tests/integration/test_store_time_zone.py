"""The store keeps UTC whatever zone the machine is set to.

DuckDB casts an instant (a zoned datetime parameter, an Arrow timestamp with a zone, as
`tessera spark load` reads Spark's Parquet) to TIMESTAMP in its TimeZone setting, which
defaults to the machine's. The check runs in a process of its own with TZ set, as a server
in Paris or New York would run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHECK = """
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from tessera.store import open_store

store = open_store(Path(sys.argv[1]) / "tessera.duckdb")
noon = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
cursor_zone = store.fetch_all("SELECT current_setting('TimeZone')")[0][0]
from_parameter = store.fetch_all("SELECT CAST(? AS TIMESTAMP)", [noon])[0][0]
store.execute("CREATE TEMP TABLE instants (moment TIMESTAMP)")
store.insert_arrow("instants", pa.table({"moment": pa.array([noon], pa.timestamp("us", tz="UTC"))}))
from_arrow = store.fetch_all("SELECT moment FROM instants")[0][0]
print(cursor_zone, from_parameter.isoformat(), from_arrow.isoformat())
"""


def test_instants_are_stored_as_utc_on_a_machine_in_another_zone(tmp_path: Path) -> None:
    answer = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)],
        env={**os.environ, "TZ": "America/New_York"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # Without the store's setting: 'America/New_York 2026-01-15T07:00:00 ...'.
    assert answer.stdout.split() == ["UTC", "2026-01-15T12:00:00", "2026-01-15T12:00:00"]
