"""Console tests: a real server on demo data, driven by Debian's Chromium via Playwright.

Every page a test opens is watched: a JavaScript error, a failed request or an HTTP error
answer fails the test (unless the test says it expects one). Screenshots go to
test-output/screenshots/ for people to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tessera.web.rendering import missing_vendor_files
from tests.conftest import ADMIN_TOKEN, LiveServer, demo_copy, start_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# As root in a container, and with no network: no sandbox, no background connections.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get)")
    if missing := missing_vendor_files():
        pytest.fail(f"console files missing ({', '.join(missing)}): run `make install`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server on a small demo company (150 people), processed so profiles exist."""
    data = demo_copy(tmp_path_factory, people=150, seed=3)
    live = start_server(data)
    yield live
    if live.process.poll() is None:
        live.stop()


class Watched:
    """A page and the problems seen on it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.allowed_statuses: set[int] = set()
        page.on("pageerror", lambda error: self.problems.append(f"JavaScript error: {error}"))
        page.on(
            "console",
            lambda message: (
                self.problems.append(f"console error: {message.text}")
                if message.type == "error" and "status of 4" not in message.text
                else None
            ),
        )
        page.on(
            "requestfailed",
            # ERR_ABORTED is Chromium cancelling a request because the page moved on (or
            # a download); a real failure has another reason, and HTTP errors are
            # caught by the response hook below.
            lambda request: (
                None
                if request.failure == "net::ERR_ABORTED"
                else self.problems.append(f"failed: {request.url} ({request.failure})")
            ),
        )
        page.on(
            "response",
            lambda response: (
                self.problems.append(f"HTTP {response.status}: {response.url}")
                if response.status >= 400 and response.status not in self.allowed_statuses
                else None
            ),
        )

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = Watched(page)
    yield seen
    context.close()
    assert not seen.problems, "\n".join(seen.problems)


def sign_in(page: Page, url: str, path: str = "/") -> None:
    page.goto(f"{url}{path}")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
