"""The offers page and the call-centre screen in a real browser: create an offer, see the
live decision for a person, then find that person from a phone number typed as a caller
says it, with their orders, open issues, consent and the offer to propose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer, basic_auth, start_server
from tests.web.conftest import Watched, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("offers") / "data", TESSERA_COLLECTORS="0")
    shop = server.create_source("web-shop")
    calls = server.create_source("call-centre", "phone")
    web = [
        {"type": "identify", "userId": "u1", "messageId": "i1", "traits": {
            "email": "jane@example.com", "phone": "+33612345678", "firstName": "Jane",
            "lastName": "Doe", "city": "Lyon", "country": "FR"}},
        {"type": "track", "userId": "u1", "event": "Product Viewed", "messageId": "v1",
         "properties": {"product_id": "shoes", "name": "Trail shoes", "category": "running"}},
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "o1",
         "properties": {"order_id": "W123", "revenue": 129.0,
                        "products": [{"product_id": "shoes", "name": "Trail shoes"}]}},
        {"type": "track", "userId": "u2", "event": "Product Viewed", "messageId": "v2",
         "properties": {"product_id": "socks", "name": "Socks"}},
    ]  # fmt: skip
    call = [{"type": "track", "event": "Call Completed", "messageId": "c1",
             "context": {"traits": {"phone": "+33 6 12 34 56 78"}},
             "userId": "u1", "properties": {"reason": "delivery", "agent": "agent7"}}]  # fmt: skip
    for key, batch in ((shop, web), (calls, call)):
        httpx.post(f"{server.url}/v1/batch", json={"batch": batch},
                   headers={"Authorization": basic_auth(key)}).raise_for_status()  # fmt: skip
    server.caught_up()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_create_an_offer_see_the_live_decision_and_find_a_caller(
    live: LiveServer, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    sign_in(page, live.url, "/offers")
    page.get_by_role("button", name="Train now").click()
    expect(page.get_by_role("status")).to_contain_text("Trained on")

    page.get_by_label("Name").fill("runners")
    page.get_by_label("Title").fill("Free socks with any shoes")
    page.get_by_label("Who (segment language; empty: everyone)").fill(
        'did "Product Viewed" where properties.category = "running"'
    )
    page.get_by_label("Priority").fill("5")
    page.get_by_role("button", name="Create offer").click()
    expect(page.get_by_role("status")).to_contain_text("Created offer runners")
    expect(page.locator("td", has_text="Free socks with any shoes")).to_be_visible()

    watched.allowed_statuses.add(400)
    page.get_by_label("Name").fill("broken")
    page.get_by_label("Title").fill("x")
    page.get_by_label("Who (segment language; empty: everyone)").fill("traits.country =")
    page.get_by_role("button", name="Create offer").click()
    expect(page.get_by_role("alert")).to_contain_text("line 1")

    page.get_by_label("Person", exact=True).fill("email:jane@example.com")
    page.get_by_role("button", name="Decide").click()
    decision = page.locator("[data-decision]")
    expect(decision.locator("[data-offer=runners]")).to_be_visible()
    expect(decision).to_contain_text("Personal")
    watched.screenshot("offers")

    page.get_by_role("link", name="Call centre").click()
    page.get_by_label("Phone number or e-mail, as the caller gives it").fill("06 12 34 56 78")
    page.get_by_role("button", name="Find").click()
    card = page.locator("[data-caller]")
    expect(card.get_by_role("heading", name="Jane Doe")).to_be_visible()
    text = card.inner_text()
    assert "W123" in text and "delivery" in text and "Lyon, FR" in text
    expect(card.locator("[data-offer=runners]")).to_be_visible()
    watched.screenshot("callcentre")

    watched.allowed_statuses.add(404)
    page.get_by_label("Phone number or e-mail, as the caller gives it").fill("nobody@example.com")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("alert")).to_contain_text("nobody has email:nobody@example.com")

    # One step for the segment page's toggle: expose a segment to the decision API.
    made = httpx.post(f"{live.url}/api/segments", headers=live.admin,
                      json={"name": "viewers", "query": 'did "Product Viewed"'})  # fmt: skip
    assert made.status_code == 201, made.text
    page.goto(f"{live.url}/segments/viewers")
    page.get_by_role("button", name="Expose to the decision API").click()
    expect(page.locator("[data-exposed=yes]")).to_be_visible()
