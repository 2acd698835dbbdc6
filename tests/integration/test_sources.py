"""Sources and write keys on a real store."""

from __future__ import annotations

import pytest

from tessera.errors import Conflict, InvalidField, InvalidWriteKey, NotFound, SourceDisabled
from tessera.events.source_keys import PublishedKeys
from tessera.runtime import Runtime


def test_create_authenticate_rotate_disable(runtime: Runtime) -> None:
    created = runtime.sources.create("web-shop", "web")
    assert created.write_key.startswith("tsk_")
    assert runtime.sources.authenticate(created.write_key).name == "web-shop"
    rotated = runtime.sources.rotate_key("web-shop")
    with pytest.raises(InvalidWriteKey, match="rotated"):
        runtime.sources.authenticate(created.write_key)
    assert runtime.sources.authenticate(rotated.write_key).id == created.source.id
    runtime.sources.set_enabled("web-shop", False)
    with pytest.raises(SourceDisabled, match="'web-shop' is disabled"):
        runtime.sources.authenticate(rotated.write_key)


def test_write_keys_are_stored_hashed(runtime: Runtime) -> None:
    created = runtime.sources.create("pos", "pos")
    stored = runtime.store.fetch_all("SELECT * FROM sources")
    assert created.write_key not in str(stored)


def test_source_rules(runtime: Runtime) -> None:
    runtime.sources.create("crm", "crm")
    with pytest.raises(Conflict):
        runtime.sources.create("crm", "crm")
    with pytest.raises(InvalidField, match="unknown channel 'fax'"):
        runtime.sources.create("fax", "fax")
    with pytest.raises(InvalidField, match="lower-case"):
        runtime.sources.create("Web Shop", "web")
    with pytest.raises(NotFound, match="known: crm"):
        runtime.sources.get("nope")


def test_every_change_to_sources_is_published_for_the_collectors(runtime: Runtime) -> None:
    published = PublishedKeys(runtime.settings.source_keys_path, check_every_s=0)
    created = runtime.sources.create("collected", "server")
    assert published.authenticate(created.write_key).id == created.source.id
    rotated = runtime.sources.rotate_key("collected")
    with pytest.raises(InvalidWriteKey):
        published.authenticate(created.write_key)
    runtime.sources.set_enabled("collected", False)
    with pytest.raises(SourceDisabled):
        published.authenticate(rotated.write_key)
    runtime.sources.set_enabled("collected", True)
    assert published.authenticate(rotated.write_key).name == "collected"
