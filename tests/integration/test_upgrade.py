"""Upgrades: a data directory written by the previous schema (a fixture made by that
release's code, tests/fixtures/upgrade/README.md) is migrated when a newer Tessera opens
it, keeps its events, segments and members, and goes on working; a database from a
newer Tessera than this one is refused, untouched, with what to do."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tessera.errors import SchemaTooNew
from tessera.runtime import Runtime
from tessera.settings import Settings
from tessera.store import LATEST_SCHEMA, schema_version

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "upgrade" / "schema-10.tar.gz"


@pytest.fixture
def old_data_dir(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "data"


def test_a_schema_10_directory_is_migrated_and_keeps_its_data(old_data_dir: Path) -> None:
    settings = Settings(data_dir=old_data_dir)
    runtime = Runtime.open(settings)
    try:
        assert schema_version(runtime.store) == LATEST_SCHEMA > 10
        assert runtime.store.fetch_one("SELECT count(*) FROM events") == (799,)
        assert len(runtime.sources.list()) == 6
        members = runtime.store.fetch_one(
            "SELECT count(*) FROM segment_members m JOIN segments s ON s.id = m.segment_id "
            "WHERE s.name = 'buyers' AND m.left_at IS NULL"
        )
        assert members == (4,)
        # It goes on working: new events are numbered after the old ones and processed.
        runtime.pipeline.process()
        assert runtime.pipeline.lag().lag_events == 0
    finally:
        runtime.close()
    reopened = Runtime.open(settings)  # a second start finds nothing left to migrate
    try:
        assert schema_version(reopened.store) == LATEST_SCHEMA
    finally:
        reopened.close()


def test_a_directory_from_a_newer_tessera_is_refused_untouched(old_data_dir: Path) -> None:
    settings = Settings(data_dir=old_data_dir)
    runtime = Runtime.open(settings)
    runtime.store.execute("INSERT INTO schema_version VALUES (?)", [LATEST_SCHEMA + 1])
    runtime.close()
    size = settings.database_path.stat().st_size
    with pytest.raises(SchemaTooNew, match="pip install --upgrade tessera") as refused:
        Runtime.open(settings)
    assert f"schema {LATEST_SCHEMA + 1}" in str(refused.value)
    assert settings.database_path.stat().st_size == size
