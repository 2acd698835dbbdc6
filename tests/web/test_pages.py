"""Every console page loads, signed in, with no JavaScript error and no failed request;
and nothing is shown without signing in."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Locator, expect

from tests.conftest import LiveServer
from tests.web.conftest import Watched, sign_in


def known_person(console: LiveServer) -> str:
    """An e-mail of a demo person with a profile."""
    found = httpx.get(
        f"{console.url}/api/profiles", params={"identifier": "@"}, headers=console.admin
    ).json()["items"]
    return str(found[0]["email"])


def test_pages_need_signing_in(console: LiveServer) -> None:
    for path in ("/", "/sources", "/profiles", "/segments", "/imports", "/segments/new"):
        answer = httpx.get(f"{console.url}{path}", follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in?next=")
        assert answer.content == b"", path  # nothing of the page leaks in the redirect
        landed = httpx.get(f"{console.url}{path}", follow_redirects=True)
        assert landed.status_code == 200, path
        assert landed.url.path == "/sign-in", path
        assert 'type="password"' in landed.text, path
        assert "@" not in landed.text.split("<main", 1)[-1], path  # no customer e-mail shown


def test_a_wrong_token_is_refused_with_a_message(console: LiveServer, watched: Watched) -> None:
    watched.allowed_statuses.add(401)
    page = watched.page
    page.goto(f"{console.url}/segments")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That is not the admin token.")
    assert page.get_by_label("Admin token").get_attribute("aria-invalid") == "true"


def test_sign_in_returns_to_the_page_asked_for_and_sign_out_ends_it(
    console: LiveServer, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, console.url, "/segments")
    assert page.url.endswith("/segments")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    page.goto(f"{console.url}/segments")
    assert "/sign-in" in page.url


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("overview", "/"),
        ("sources", "/sources"),
        ("source", "/sources/web-shop"),
        ("profiles-search", "/profiles?q=%40"),
        ("segments", "/segments"),
        ("segment-editor", "/segments/new"),
        ("overlap", "/segments/overlap"),
        ("imports", "/imports"),
    ],
)
def test_page_loads_cleanly(console: LiveServer, watched: Watched, name: str, path: str) -> None:
    page = watched.page
    sign_in(page, console.url, path)
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").count() == 1
    assert page.locator("main#main").count() == 1
    watched.screenshot(name)


def test_profile_and_segment_pages_load_cleanly(console: LiveServer, watched: Watched) -> None:
    httpx.post(
        f"{console.url}/api/segments",
        headers=console.admin,
        json={"name": "has-email", "query": "has email"},
    ).raise_for_status()
    page = watched.page
    sign_in(page, console.url, f"/profiles/email:{known_person(console)}")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name="Identifiers")).to_be_visible()
    assert page.locator(".timeline .event").count() > 0
    assert page.locator(".timeline .channel .mark").count() > 0
    expect(page.locator("section", has_text="Segments").first).to_contain_text("has-email")
    watched.screenshot("profile")
    page.goto(f"{console.url}/segments/has-email")
    page.wait_for_load_state("networkidle")
    assert int(page.locator("dd[data-size]").get_attribute("data-size") or 0) > 0
    expect(page.locator("canvas[data-drawn]")).to_have_count(1)  # the history chart was drawn
    watched.screenshot("segment")
    page.goto(f"{console.url}/segments/overlap")
    expect(page.locator("table.matrix")).to_be_visible()


def first_cells(where: Locator) -> list[str]:
    """The profiles a table's rows link to (names repeat among people, ids do not)."""
    links = where.locator("table tbody tr td:first-child a")
    return [str(links.nth(n).get_attribute("href")) for n in range(links.count())]


def test_long_lists_show_their_total_and_page_on_with_next_links(
    console: LiveServer, watched: Watched
) -> None:
    console.caught_up()
    created = httpx.post(f"{console.url}/api/segments", headers=console.admin,
                         json={"name": "paged", "query": "has email"})  # fmt: skip
    assert created.status_code == 201, created.text
    size = created.json()["size"]
    assert size > 50, "the demo should have more people with an e-mail than one page"
    page = watched.page
    sign_in(page, console.url, "/segments/paged")
    members = page.locator("#members").locator("xpath=..")
    expect(members.get_by_role("status")).to_contain_text(f"{size:,} members now")
    first = first_cells(members)
    assert len(first) == 50
    members.get_by_role("link", name="Next page").click()
    page.wait_for_load_state()
    second = first_cells(members)
    assert second and not set(second) & set(first)
    expect(members.get_by_role("link", name="First page")).to_be_visible()

    page.goto(f"{console.url}/profiles?q=%40")
    found = page.get_by_role("status").inner_text()
    assert "profiles found, 50 shown here" in found
    first = first_cells(page.locator("main"))
    page.get_by_role("link", name="Next page").click()
    page.wait_for_load_state()
    assert "q=%40" in page.url and "cursor=" in page.url
    assert not set(first_cells(page.locator("main"))) & set(first)

    key = httpx.post(f"{console.url}/api/sources", headers=console.admin,
                     json={"name": "paged-src", "channel": "web"}).json()["write_key"]  # fmt: skip
    bad = [{"type": "purchase", "userId": "x", "messageId": f"bad-{n}"} for n in range(25)]
    httpx.post(f"{console.url}/v1/batch", json={"batch": bad}, auth=(key, "")).raise_for_status()
    page.goto(f"{console.url}/sources/paged-src")
    rejected = page.locator("#rejected").locator("xpath=..")
    expect(rejected.get_by_role("status")).to_contain_text("25 rejected in all, 20 shown here")
    rejected.get_by_role("link", name="Next page").click()
    page.wait_for_load_state()
    expect(rejected.locator("tbody tr")).to_have_count(5)
    expect(rejected.get_by_role("link", name="Newest")).to_be_visible()
    watched.screenshot("rejected-page-2")


def test_every_form_field_has_a_label_and_the_skip_link_comes_first(
    console: LiveServer, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, console.url)
    for path in ("/sources", "/profiles", "/segments/new", "/imports", "/sources/web-shop"):
        page.goto(f"{console.url}{path}")
        page.wait_for_load_state("networkidle")  # the editor checks its text on load
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden')
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], f"{path}: fields without a label: {unlabelled}"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_an_unknown_profile_is_a_page_not_a_json_error(
    console: LiveServer, watched: Watched
) -> None:
    watched.allowed_statuses.add(404)
    page = watched.page
    sign_in(page, console.url, "/profiles/email:nobody@nowhere.example")
    expect(page.locator("h1")).to_have_text("Something is not right")
    expect(page.get_by_role("alert")).to_contain_text("nobody@nowhere.example")


def test_deleting_a_segment_asks_first(console: LiveServer, watched: Watched) -> None:
    httpx.post(
        f"{console.url}/api/segments",
        headers=console.admin,
        json={"name": "to-delete", "query": "seen on web"},
    ).raise_for_status()
    page = watched.page
    sign_in(page, console.url, "/segments/to-delete")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete this segment").click()
    assert page.url.endswith("/segments/to-delete")  # refused: nothing happened
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this segment").click()
    page.wait_for_url("**/segments")
    assert page.get_by_role("link", name="to-delete").count() == 0


def test_editing_a_segment_checks_as_you_type_and_saves(
    console: LiveServer, watched: Watched
) -> None:
    """Issue 10: the live check is hit on every keystroke, so a half-typed control
    character or date must show an error at its spot, never break the panel."""
    httpx.post(
        f"{console.url}/api/segments",
        headers=console.admin,
        json={"name": "to-edit", "query": "has email"},
    ).raise_for_status()
    page = watched.page
    sign_in(page, console.url, "/segments/to-edit")
    page.get_by_role("link", name="Edit the query").click()
    page.wait_for_url(re.compile(r"/segments/to-edit/edit$"))
    query = page.get_by_label("Who is in it")
    query.fill('did "Page Viewed" between "1997-13-01" and "1998-01-01"')
    problem = page.locator(".problem")
    problem.wait_for()
    expect(problem).to_contain_text("is not a date that exists")
    assert problem.get_attribute("data-error-column") == "27"
    query.fill("has email or has user_id")
    page.locator(".preview .size").wait_for()
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(re.compile(r"/segments/to-edit$"))
    expect(page.locator("pre.query")).to_have_text("has email or has user_id")


def test_predict_page_fits_the_models_and_a_profile_shows_its_scores(
    console: LiveServer, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, console.url, "/predict")
    # Fitting answers when the models are fitted (~7 s here when the machine is quiet; over
    # 15 s, Playwright's default, with the whole suite beside it on two cores).
    page.get_by_role("button", name="Fit the models now").click(timeout=90_000)
    page.wait_for_url(f"{console.url}/predict", timeout=90_000)
    page.wait_for_load_state("networkidle")
    for name in ("clv", "churn_risk", "purchase_propensity"):
        expect(page.locator(f"section#{name} [data-status]")).to_be_visible()
    fitted = page.locator("section#clv [data-status]").inner_text() == "fitted"
    if fitted:  # the holdout chart and the calibration plots were drawn by Chart.js
        assert page.locator("canvas[data-drawn]").count() >= 1
    watched.screenshot("predict")
    propensity = page.locator("section#purchase_propensity [data-status]").inner_text()
    page.goto(f"{console.url}/profiles/email:{known_person(console)}")
    expect(page.get_by_role("heading", name="Predicted traits")).to_be_visible()
    if propensity == "fitted":  # everyone seen is scored, with reasons
        assert page.locator("tr[data-prediction=purchase_propensity]").count() == 1
    watched.screenshot("profile-predicted")
