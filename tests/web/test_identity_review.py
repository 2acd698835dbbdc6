"""The console's identity page in a real browser: find matches, then accept one and reject
one from the review queue, with the evidence side by side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer, basic_auth, start_server
from tests.integration.test_probabilistic_identity import _crm, _people, _till
from tests.web.conftest import Watched, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    # Every match waits for review: nothing is linked without a person.
    server = start_server(tmp_path / "data", TESSERA_IDENTITY_MATCH_THRESHOLD="1.0")
    yield server
    if server.process.poll() is None:
        server.stop()


def test_review_queue_accepts_one_match_and_rejects_another(
    live: LiveServer, watched: Watched
) -> None:
    people = _people(80)
    for source, messages in (("crm", [_crm(p) for p in people]),
                             ("shops", [_till(p) for p in people])):  # fmt: skip
        key = live.create_source(source)
        httpx.post(f"{live.url}/v1/batch", json={"batch": messages},
                   headers={"Authorization": basic_auth(key)}).raise_for_status()  # fmt: skip
    live.caught_up()

    page = watched.page
    sign_in(page, live.url, "/identity")
    page.get_by_role("button", name="Find matches").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_contain_text("to review")
    matches = page.locator("article.match")
    assert matches.count() >= 2
    first, second = matches.nth(0), matches.nth(1)
    first_id, second_id = first.get_attribute("id"), second.get_attribute("id")
    # The evidence side by side: both records' values per field, and the weights.
    evidence = first.locator("table.evidence")
    expect(evidence.get_by_role("rowheader", name="birth_date")).to_be_visible()
    assert evidence.locator("tfoot").inner_text().startswith("Match weight")

    first.get_by_role("button", name=f"Accept {first_id}").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_contain_text("accepted")
    page.locator(f"article#{second_id}").get_by_role("button", name=f"Reject {second_id}").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_contain_text("rejected")

    decided = page.locator("section[aria-labelledby=decided] tbody tr")
    assert decided.locator("[data-decision]").count() == 0  # the attribute is on the row
    statuses = {row.get_attribute("data-decision") for row in decided.all()}
    assert statuses == {"accepted", "rejected"}
    assert page.locator(f"article#{first_id}").count() == 0
    assert page.locator(f"article#{second_id}").count() == 0
    page.screenshot(path=str(Path("test-output/screenshots/identity-review.png")), full_page=True)

    # The accepted pair is one person now, through the API as well.
    found = httpx.get(f"{live.url}/api/identity/matches/{first_id}", headers=live.admin).json()
    assert found["status"] == "accepted" and found["first_profile"] == found["second_profile"]
