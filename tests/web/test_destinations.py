"""The console's destinations page in a real browser: the delivery log chart, the dead
letters a refusing webhook left, and the replay button sending them again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer, basic_auth, start_server
from tests.receivers import Receiver
from tests.web.conftest import Watched, sign_in


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "data")
    yield server
    if server.process.poll() is None:
        server.stop()


def report(live: LiveServer, name: str) -> dict[str, object]:
    answer = httpx.get(f"{live.url}/api/destinations/{name}/deliveries", headers=live.admin)
    result: dict[str, object] = answer.json()
    return result


def wait_until(check: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_destinations_page_shows_deliveries_dead_letters_and_replays(
    live: LiveServer, watched: Watched
) -> None:
    key = live.create_source("shop")
    with Receiver("refuse") as receiver:
        httpx.post(f"{live.url}/api/destinations", headers=live.admin, json={
            "name": "crm-hook", "kind": "webhook",
            "options": {"url": receiver.url, "batch_size": 5, "linger_seconds": 0.05},
        }).raise_for_status()  # fmt: skip
        batch = [{"type": "track", "userId": "u1", "messageId": f"e{n}",
                  "event": "Bad" if n == 2 else "Good"} for n in range(6)]  # fmt: skip
        httpx.post(f"{live.url}/v1/batch", json={"batch": batch},
                   headers={"Authorization": basic_auth(key)}).raise_for_status()  # fmt: skip
        wait_until(lambda: report(live, "crm-hook")["dead_letters"] == 1, "no dead letter")

        page = watched.page
        sign_in(page, live.url, "/destinations")
        section = page.locator("section#crm-hook")
        expect(section.get_by_role("heading", name="crm-hook")).to_be_visible()
        expect(section.locator("[data-total=delivered]")).to_have_text("5")
        expect(section.locator("[data-total=dead_lettered]")).to_have_text("1")
        section.locator("canvas[data-drawn]").wait_for()
        expect(section.locator("table.dead-letters").get_by_text("e2")).to_be_visible()
        watched.screenshot("destinations")

        receiver.mode = "healthy"  # the receiver is fixed: send the dead letter again
        section.get_by_role("button", name="Replay 1 dead letter").click()
        page.wait_for_load_state()
        wait_until(lambda: "e2" in receiver.message_ids(), "the replay did not arrive")
        wait_until(lambda: report(live, "crm-hook")["dead_letters"] == 0, "still dead")
        page.reload()
        expect(page.locator("section#crm-hook").get_by_text("None.")).to_be_visible()
