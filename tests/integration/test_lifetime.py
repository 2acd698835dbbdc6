"""The lifetime of anonymous data, with a controlled clock: expired anonymous profiles
leave the log and everything derived from it; known people keep their anonymous past."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tessera.errors import NotFound
from tessera.identity.lookup import identifier_from_text, lookup
from tessera.profiles import view
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import send

NOW = datetime(2026, 4, 1, 12, 0)


def page(anonymous_id: str, day: str, message: str, **extra: object) -> dict[str, object]:
    return {"type": "page", "anonymousId": anonymous_id, "messageId": message,
            "timestamp": f"{day}T10:00:00Z", **extra}  # fmt: skip


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token=ADMIN_TOKEN,
        anonymous_lifetimes={"advertising_id": 30, "anonymous_id": 40},
        anonymous_lifetime_days=365,
    )
    runtime = Runtime.open(settings)
    send(
        runtime,
        [
            page("old-visitor", "2026-02-01", "1"),
            page("recent-visitor", "2026-03-20", "2"),
            page("became-known", "2025-11-01", "3"),
            {
                "type": "identify",
                "anonymousId": "became-known",
                "userId": "u-1",
                "messageId": "4",
                "timestamp": "2025-11-02T10:00:00Z",
            },
            {
                "type": "track",
                "event": "App Opened",
                "messageId": "5",
                "anonymousId": "phone-install",
                "timestamp": "2026-02-15T10:00:00Z",
                "context": {"device": {"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC"}},
            },
        ],
    )
    runtime.pipeline.process()
    yield runtime
    runtime.close()


def known(runtime: Runtime, reference: str) -> bool:
    try:
        lookup(runtime.store, reference, None)
    except NotFound:
        return False
    return True


def test_a_dry_run_counts_and_deletes_nothing(shop: Runtime) -> None:
    result = shop.pipeline.purge_expired(NOW, dry_run=True).model_dump()
    assert result == {"profiles": 2, "events": 2, "third_party": 0, "dry_run": True}
    assert known(shop, "anonymous_id:old-visitor")


def test_expired_anonymous_profiles_leave_the_log_and_stay_gone(shop: Runtime) -> None:
    result = shop.pipeline.purge_expired(NOW).model_dump()
    assert result == {"profiles": 2, "events": 2, "third_party": 0, "dry_run": False}
    assert not known(shop, "anonymous_id:old-visitor")
    # The longest lifetime of its types (40 days) has passed for the phone seen on 15 Feb.
    assert not known(shop, "advertising_id:6d92078a-8246-4ba4-ae5b-76104861e7dc")
    assert known(shop, "anonymous_id:recent-visitor")
    survivor = lookup(shop.store, "user_id:u-1", None)
    assert view.profile_from_store(shop.store, survivor)["event_count"] == 2
    assert shop.store.fetch_one("SELECT count(*) FROM events") == (3,)
    shop.pipeline.rebuild()  # the log is the truth: nothing comes back
    assert not known(shop, "anonymous_id:old-visitor")
    assert known(shop, "anonymous_id:became-known")
    # The pipeline's memory was reloaded: look-ups from memory agree.
    unifier = shop.pipeline.unifier
    assert unifier.graph.profile(identifier_from_text("anonymous_id:old-visitor", None)) is None


def test_nothing_expires_inside_its_lifetime(shop: Runtime) -> None:
    assert shop.pipeline.purge_expired(datetime(2026, 1, 10)).model_dump()["profiles"] == 0
