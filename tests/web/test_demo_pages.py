"""The demo fills the console: on a reduced demo company, every page of the console is
visited in a real browser, none is empty, and each is kept as a screenshot (in the test's
temporary folder: `--basetemp` to keep them). The overview gives each source and each
channel one colour across its charts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer, start_server
from tests.web.conftest import Watched, sign_in

pytestmark = pytest.mark.slow

#: what an empty page says (tessera/web/templates): none of it may show on the demo
EMPTY = re.compile(
    r"No (segments|sources|imports|traits|destination|feed imported|results imported) yet"
    r"|No segment has members yet|None yet"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("demo-pages") / "data"
    loaded = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "demo", "--people", "50", "--seed", "7"],
        env={**os.environ, "TESSERA_DATA_DIR": str(data), "TESSERA_ADMIN_TOKEN": ADMIN_TOKEN},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    live = start_server(data, TESSERA_COLLECTORS="0")  # pages only: one process starts sooner
    try:
        yield live
    finally:
        live.stop()


def _pages(live: LiveServer) -> list[str]:
    """Every page of the console, with the demo's names in the paths that take one."""

    def get(path: str) -> object:
        answer = httpx.get(f"{live.url}{path}", headers=live.admin, timeout=30)
        answer.raise_for_status()
        return answer.json()

    imports = get("/api/imports")
    import_id = (imports["items"] if isinstance(imports, dict) else imports)[0]["id"]  # type: ignore[index]
    person = get("/api/segments/demo-repeat-buyers/members?limit=1")["items"][0]  # type: ignore[index]
    return [
        "/",
        "/sources",
        "/sources/web-shop",
        "/sources/web-shop/events",
        "/imports",
        f"/imports/{import_id}/rejects",
        "/profiles",
        f"/profiles/{quote(person['profile_id'])}",
        "/segments",
        "/segments/new",
        "/segments/demo-repeat-buyers",
        "/segments/demo-window-shoppers/edit",
        "/segments/overlap",
        "/audiences",
        "/audiences/taxonomy/iab-audience",
        "/audiences/new",
        "/audiences/lookalikes/new",
        "/audiences/lookalikes/demo-buyers-lookalike",
        "/audiences/campaigns/demo-autumn-sale",
        "/destinations",
        "/docs",
    ]


def test_every_console_page_has_something_to_show_on_the_demo(
    demo: LiveServer, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    watched.allowed_statuses = {404}  # an import without rejects answers its page with 404
    sign_in(page, demo.url)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    for path in _pages(demo):
        response = page.goto(f"{demo.url}{path}", wait_until="load")
        assert response is not None
        if path.endswith("/rejects") and response.status == 404:
            continue
        assert response.status == 200, f"{path}: {response.status}"
        text = page.locator("body").inner_text()
        assert not EMPTY.search(text), f"{path} shows an empty state: {EMPTY.search(text)}"
        name = path.strip("/").replace("/", "_").replace("%", "") or "overview"
        page.screenshot(path=str(shots / f"{name[:80]}.png"), full_page=True)
    assert len(list(shots.glob("*.png"))) >= 19


def test_every_demo_segment_has_members(demo: LiveServer) -> None:
    listed = httpx.get(f"{demo.url}/api/segments", headers=demo.admin).json()
    sizes = {segment["name"]: segment["size"] for segment in listed}
    demo_segments = {name: size for name, size in sizes.items() if name.startswith("demo-")}
    assert len(demo_segments) == 5 and all(demo_segments.values()), demo_segments


def test_the_audiences_page_shows_taxonomies_a_feed_a_lookalike_and_a_campaign(
    demo: LiveServer, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, demo.url, "/audiences")
    text = page.locator("main").inner_text()
    for expected in ("iab-audience", "iab-content", "acme-data", "demo-buyers-lookalike",
                     "demo-autumn-sale"):  # fmt: skip
        assert expected in text, expected


def test_the_overview_gives_each_source_and_channel_one_colour(
    demo: LiveServer, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, demo.url)
    colours = page.evaluate(
        """() => Array.from(document.querySelectorAll('canvas[data-series]')).map(canvas =>
            Object.fromEntries(JSON.parse(canvas.dataset.series).datasets
              .map(set => [set.label, set.backgroundColor])))"""
    )
    by_source, by_channel = colours
    assert len(by_source) >= 5 and len(by_channel) >= 4
    assert all(by_source.values()) and all(by_channel.values())
    assert len(set(by_source.values())) == len(by_source)  # one colour per source
    assert len(set(by_channel.values())) == len(by_channel)  # one per channel
    assert not set(by_source.values()) & set(by_channel.values())  # and never shared
