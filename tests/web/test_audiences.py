"""The console's Audiences section: taxonomy browser, the audience builder with its
population, a lookalike with its reach-accuracy chart, and a campaign report."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Route, expect

from tests.conftest import LiveServer
from tests.web.conftest import Watched, sign_in

IAB = Path(__file__).resolve().parents[1] / "fixtures" / "iab" / "audience-taxonomy-1.1.tsv"


def upload(console: LiveServer, path: str, name: str, content: bytes, **fields: str) -> None:
    answer = httpx.post(
        f"{console.url}{path}",
        headers=console.admin,
        files={"file": (name, content)},
        data=fields,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


def test_audiences_from_taxonomy_to_campaign(console: LiveServer, watched: Watched) -> None:
    upload(console, "/api/audiences/taxonomies", IAB.name, IAB.read_bytes())
    cookies = httpx.get(
        f"{console.url}/api/profiles", params={"identifier": "-", "limit": 30},
        headers=console.admin,
    ).json()["items"]  # fmt: skip
    feed = "id,id_type,segments\n"
    feed += "".join(
        f"{i.split(':', 1)[1]},cookie_id,720\n" for p in cookies for i in p["identifiers"][:1]
    )
    upload(console, "/api/audiences/feeds", "feed.csv", feed.encode(), provider="travelco")

    page = watched.page
    sign_in(page, console.url, "/audiences")
    expect(page.get_by_role("link", name="iab-audience")).to_be_visible()
    expect(page.get_by_text("travelco").first).to_be_visible()
    watched.screenshot("audiences")

    page.get_by_role("link", name="iab-audience").click()
    page.get_by_role("link", name="Interest", exact=True).click()
    expect(page.get_by_role("link", name="Travel", exact=True)).to_be_visible()
    page.get_by_label("Search the taxonomy").fill("adventure")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Interest > Travel > Adventure Travel")).to_be_visible()
    watched.screenshot("taxonomy")

    page.goto(f"{console.url}/audiences/new")
    page.get_by_label("Name").fill("known-emails")
    page.get_by_label("Known customers only").check()
    page.get_by_label("And who match").fill("has email")
    page.locator(".preview .description", has_text="has a known email").wait_for()
    size = page.locator(".preview .size")
    assert int(size.get_attribute("data-size") or 0) > 10
    expect(page.locator(".preview")).to_contain_text("is a known person, and has a known email")
    watched.screenshot("audience-builder")
    page.get_by_role("button", name="Save audience").click()
    page.wait_for_url("**/segments/known-emails")

    page.goto(f"{console.url}/audiences/lookalikes/new")
    page.get_by_label("Name").fill("emails-like")
    page.get_by_label("Seed segment").select_option("known-emails")
    page.get_by_label("Reach: how many profiles").fill("10")
    page.get_by_label("Population").select_option("anonymous")
    page.get_by_role("button", name="Build the lookalike").click()
    page.wait_for_url("**/audiences/lookalikes/emails-like")
    expect(page.locator("canvas[data-drawn]")).to_have_count(1)
    assert page.locator("[data-reach]").get_attribute("data-reach") == "10"
    watched.screenshot("lookalike")

    httpx.post(
        f"{console.url}/api/audiences/known-emails/holdout",
        headers=console.admin,
        json={"share": 0.2},
    ).raise_for_status()
    results = (
        "campaign,day,audience,impressions,clicks,conversions,cost,reach\n"
        "spring,2026-05-01,known-emails,1000,40,4,30,400\n"
        "spring,2026-05-02,known-emails,800,30,2,25,450\n"
        "spring,2026-05-02,emails-like,500,10,1,10,90\n"
    )
    upload(console, "/api/audiences/campaigns/results", "results.csv", results.encode())
    page.goto(f"{console.url}/audiences")
    page.get_by_role("link", name="spring").first.click()
    expect(page.locator("canvas[data-drawn]")).to_have_count(2)
    expect(page.get_by_role("cell", name="1,800")).to_be_visible()
    watched.screenshot("campaign")


def test_a_lookalike_mistake_is_shown_on_the_form(console: LiveServer, watched: Watched) -> None:
    watched.allowed_statuses.add(400)
    page = watched.page
    sign_in(page, console.url, "/audiences/lookalikes/new")
    page.get_by_label("Name").fill("nothing-chosen")
    page.get_by_role("button", name="Build the lookalike").click()
    expect(page.get_by_role("alert")).to_contain_text("a reach")
    assert page.get_by_label("Name").input_value() == "nothing-chosen"


def test_builder_saves_an_audience_on_computed_traits(
    console: LiveServer, watched: Watched
) -> None:
    """The builder checked a query with the computed-trait names but saved it with none,
    so a query on `computed.order_count` previewed fine and failed on Save."""
    page = watched.page
    sign_in(page, console.url, "/audiences/new")
    page.get_by_label("Name").fill("repeat-buyers")
    page.get_by_label("Known customers only").check()
    page.get_by_label("And who match").fill("computed.order_count >= 2")
    page.locator(".preview .description", has_text="order_count").wait_for()
    page.get_by_role("button", name="Save audience").click()
    page.wait_for_url("**/segments/repeat-buyers")
    saved = httpx.get(f"{console.url}/api/segments/repeat-buyers", headers=console.admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["query"] == "known and (computed.order_count >= 2)"


def test_the_builder_shows_the_answer_to_the_latest_input(
    console: LiveServer, watched: Watched
) -> None:
    """The population choices and the query each ask for a preview; an earlier answer that
    arrives late must not replace the later one (it did: a slow answer for the population
    alone overwrote the one for the population and the query)."""
    page = watched.page
    sign_in(page, console.url, "/audiences")
    held: list[Route] = []
    released = False

    def hold_population_only(route: Route) -> None:
        body = route.request.post_data or ""
        if not released and "population=known" in body and "query=has" not in body:
            held.append(route)  # answered after the later request, below
        else:
            route.continue_()

    page.route("**/audiences/check", hold_population_only)
    page.goto(f"{console.url}/audiences/new")
    # The page's own first check answered: nothing in flight, so the population's is
    # sent at once (one queued behind a request in flight is replaced by the query's).
    page.wait_for_load_state("networkidle")
    page.get_by_label("Known customers only").check()
    page.get_by_label("And who match").fill("has email")
    page.wait_for_timeout(800)  # past the query's 300 ms debounce: its request is asked for
    released = True
    assert held, "the population's preview was not asked for"
    for route in held:
        route.continue_()
    page.locator(".preview .description", has_text="has a known email").wait_for()
    page.wait_for_timeout(500)  # time for a stale answer to land, were one still coming
    expect(page.locator(".preview")).to_contain_text("is a known person, and has a known email")
