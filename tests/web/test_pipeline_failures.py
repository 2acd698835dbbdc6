"""The console shows what the pipeline could not use: the events it set aside (with a way
to process them again after a fix) and, on a profile, the values that were not identifiers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server
from tests.integration.helpers import send
from tests.integration.test_pipeline_failures import write_poison
from tests.web.conftest import Watched, sign_in


@pytest.fixture(scope="module")
def troubled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, int]]:
    data: Path = tmp_path_factory.mktemp("troubled") / "data"
    runtime = Runtime.open(Settings(data_dir=data, admin_token=ADMIN_TOKEN))
    send(runtime, [{"type": "identify", "userId": "bad", "messageId": "m1",
                    "traits": {"email": "jean.dupont@", "firstName": "Jean"}}])  # fmt: skip
    seq = write_poison(runtime, "m2")
    runtime.close()
    live = start_server(data, TESSERA_PIPELINE_MAX_ATTEMPTS="1")
    live.caught_up(timeout=60)
    yield live, seq
    if live.process.poll() is None:
        live.stop()


def test_the_overview_lists_set_aside_events_and_replays_them(
    troubled: tuple[LiveServer, int], watched: Watched
) -> None:
    live, seq = troubled
    page = watched.page
    sign_in(page, live.url)
    figure = page.locator(".figures div", has_text="Set aside by the pipeline")
    expect(figure.locator("dd")).to_have_text("1")
    section = page.locator("section", has_text="Events set aside by the pipeline")
    expect(section).to_contain_text(f"#{seq}")
    expect(section).to_contain_text("Recursion limit")
    watched.screenshot("overview-set-aside")
    page.get_by_role("button", name="Process them again").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_have_text("Replayed 1 events: 1 still failing.")


def test_a_profile_shows_the_values_that_could_not_be_identifiers(
    troubled: tuple[LiveServer, int], watched: Watched
) -> None:
    live, _ = troubled
    page = watched.page
    sign_in(page, live.url, "/profiles/user_id:bad")
    dropped = page.locator("section", has_text="Values that could not be identifiers")
    expect(dropped).to_contain_text("je…t@")
    expect(dropped).to_contain_text("not an e-mail address")
    watched.screenshot("profile-dropped")
