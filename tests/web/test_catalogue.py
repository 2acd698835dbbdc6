"""The console's Catalogue page in a real browser (issue 14): the counts, a search, a
category filter, one product with its attributes, and retiring it from its page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tessera.demo import catalog
from tests.conftest import LiveServer, start_server
from tests.web.conftest import Watched, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "data")
    path, mapping = catalog.write(tmp_path / "feed")
    with path.open("rb") as handle:
        httpx.post(
            f"{server.url}/api/catalog/import",
            files={"file": (path.name, handle)},
            data={"mapping": mapping},
            headers=server.admin,
        ).raise_for_status()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_catalogue_page_searches_filters_shows_and_retires_a_product(
    live: LiveServer, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, live.url, "/catalogue")
    expect(page.get_by_role("heading", name="Catalogue")).to_be_visible()
    expect(page.locator("[data-total=products]")).to_have_text("30")
    expect(page.locator("[data-total=available]")).to_have_text("29")

    page.get_by_label("Find a product").fill("trail shoes")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_have_text("1 product.")
    expect(page.get_by_role("cell", name="Sport > Running > Shoes")).to_be_visible()

    page.get_by_label("Find a product").fill("")
    page.get_by_label("Category").select_option("Travel")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_have_text("5 products.")
    watched.screenshot("catalogue")

    page.get_by_role("link", name="Cabin suitcase").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Cabin suitcase")).to_be_visible()
    expect(page.get_by_role("row", name="colour")).to_be_visible()
    expect(page.locator("[data-status]")).to_have_text("on sale")
    page.get_by_role("button", name="Retire").click()
    page.wait_for_load_state()
    assert page.locator("[data-status]").inner_text().startswith("retired")
    watched.screenshot("product")
    shown = httpx.get(f"{live.url}/api/catalog/products/tra-0", headers=live.admin).json()
    assert shown["retired"] is True
