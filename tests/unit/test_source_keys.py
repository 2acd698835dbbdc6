"""The write keys published for the collector processes: written whole, read back, reloaded."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tessera.errors import InvalidWriteKey, SourceDisabled, StoreUnavailable
from tessera.events import source_keys
from tessera.events.sources import Source
from tessera.privacy.keys import hash_secret

KEY = "tsk_published-key-0123456789"


def _source(enabled: bool = True) -> Source:
    created = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    return Source("src_1", "web-shop", "web", enabled, KEY[:8], created)


def test_published_keys_read_back_as_the_same_sources(tmp_path: Path) -> None:
    path = tmp_path / "source-keys.json"
    source_keys.publish(path, {hash_secret(KEY): _source()})
    assert source_keys.read(path) == {hash_secret(KEY): _source()}
    assert KEY not in path.read_text(), "a write key must never be written in clear"


def test_published_keys_file_is_owner_only_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "source-keys.json"
    source_keys.publish(path, {hash_secret(KEY): _source()})
    source_keys.publish(path, {})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["source-keys.json"]


def test_a_collector_sees_a_source_disabled_after_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "source-keys.json"
    source_keys.publish(path, {hash_secret(KEY): _source()})
    keys = source_keys.PublishedKeys(path, check_every_s=0)
    assert keys.authenticate(KEY).id == "src_1"
    source_keys.publish(path, {hash_secret(KEY): _source(enabled=False)})
    with pytest.raises(SourceDisabled, match="'web-shop' is disabled"):
        keys.authenticate(KEY)
    source_keys.publish(path, {})
    with pytest.raises(InvalidWriteKey, match="not known"):
        keys.authenticate(KEY)


def test_a_collector_keeps_the_last_keys_when_the_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "source-keys.json"
    source_keys.publish(path, {hash_secret(KEY): _source()})
    keys = source_keys.PublishedKeys(path, check_every_s=0)
    assert keys.authenticate(KEY).name == "web-shop"
    path.write_bytes(b'{"format": 1, "sour')  # only a broken writer could leave this
    assert keys.authenticate(KEY).name == "web-shop"


def test_no_published_keys_is_a_retryable_refusal_naming_the_file(tmp_path: Path) -> None:
    keys = source_keys.PublishedKeys(tmp_path / "source-keys.json", check_every_s=0)
    with pytest.raises(StoreUnavailable, match=r"source-keys\.json") as refused:
        keys.authenticate(KEY)
    assert refused.value.status == 503


def test_a_key_published_a_moment_ago_works_on_its_first_request(tmp_path: Path) -> None:
    path = tmp_path / "source-keys.json"
    source_keys.publish(path, {})
    keys = source_keys.PublishedKeys(path, check_every_s=3600)
    with pytest.raises(InvalidWriteKey):
        keys.authenticate(KEY)
    source_keys.publish(path, {hash_secret(KEY): _source()})
    assert keys.authenticate(KEY).id == "src_1"
