"""The console as a marketer uses it, from signing in to a segment with its size."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import expect
from segment.analytics import Client

from tests.conftest import LiveServer
from tests.web.conftest import Watched, sign_in


def test_from_a_new_source_to_a_segment(console: LiveServer, watched: Watched) -> None:
    page = watched.page
    sign_in(page, console.url)

    # Create a source; its write key is shown once.
    page.get_by_role("link", name="Sources").click()
    page.get_by_label("Name").fill("landing-page")
    page.get_by_label("Channel").select_option("web")
    page.get_by_role("button", name="Create source").click()
    write_key = page.locator("#new-key").inner_text()
    assert write_key.startswith("tsk_")
    assert write_key in (page.locator("#snippet-python").text_content() or "")
    watched.screenshot("journey-1-source-created")

    # Send events with the real Segment SDK, pointed at this server.
    client = Client(write_key, host=console.url, sync_mode=True)
    client.identify("journey-user-1", {"email": "Zoe.Journey@Example.com", "country": "FR"})
    client.track("journey-user-1", "Order Completed", {"revenue": 42.5})
    client.track("journey-user-1", "Order Completed", {"revenue": 18.0})
    client.flush()

    # The debugger shows them as they arrive (it polls every 2 seconds).
    debugger = page.locator("#debugger-rows")
    debugger.get_by_text("Order Completed").first.wait_for()
    assert debugger.get_by_text("identify").count() == 1
    watched.screenshot("journey-2-debugger")

    # Find the person once the pipeline has them, and open the 360° view.
    console.caught_up()
    page.get_by_role("link", name="Profiles").click()
    page.get_by_label("Find a person").fill("zoe.journey")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="zoe.journey@example.com").click()
    expect(page.get_by_text("journey-user-1").first).to_be_visible()
    expect(page.locator(".timeline .event")).to_have_count(3)
    watched.screenshot("journey-3-profile")

    # Write a segment with a typo: the error appears at the spot, then goes away.
    page.get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Name").fill("fr-buyers")
    query = page.get_by_label("Who is in it")
    query.press_sequentially('traits.contry = "FR"')
    problem = page.locator(".problem")
    # The check runs as keys are typed: a problem with a shorter text ("ends too early")
    # may show first, so wait for the one about the whole text.
    expect(problem).to_contain_text("did you mean 'country'?", timeout=15_000)
    assert problem.get_attribute("data-error-line") == "1"
    assert problem.get_attribute("data-error-column") == "1"
    expect(page.locator("mark.at-spot")).to_have_text("traits.contry")
    watched.screenshot("journey-4-segment-typo")

    query.fill('traits.country = "FR" and count(event "Order Completed") >= 2')
    size = page.locator(".preview .size")
    size.wait_for()
    assert int(size.get_attribute("data-size") or 0) >= 1
    expect(page.locator(".preview .description")).to_contain_text("country is")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(re.compile(r"/segments/fr-buyers$"))
    assert int(page.locator("dd[data-size]").get_attribute("data-size") or 0) >= 1
    watched.screenshot("journey-5-segment")

    # Why is Zoe in it?
    page.get_by_label("Identifier (TYPE:VALUE) or profile id").fill("user_id:journey-user-1")
    page.get_by_role("button", name="Explain").click()
    assert page.locator(".why .holds").count() >= 3


def test_import_a_csv_with_a_bad_row_shows_progress_and_rejects(
    console: LiveServer, watched: Watched, tmp_path: Path
) -> None:
    upload = tmp_path / "console-upload.csv"
    upload.write_text(
        "email,first,spent\n"
        "ana.import@example.com,Ana,12.5\n"
        ",Nobody,3\n"
        "ben.import@example.com,Ben,7\n"
    )
    page = watched.page
    sign_in(page, console.url, "/imports")
    page.get_by_label("File", exact=True).set_input_files(str(upload))
    page.get_by_label("Into source").select_option("crm")
    page.get_by_label("Identifiers: one per line").fill("email = email")
    page.get_by_label("Traits:").fill("first_name = first\nspent = spent : number")
    page.get_by_role("button", name="Import").click()
    row = page.locator("#imports-table tr", has_text="console-upload.csv")
    row.locator("td.status", has_text="done").wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[4:6] == ["3", "2"], cells  # rows, accepted
    rejects = row.get_by_role("link", name="1 (reject file)")
    with page.expect_download() as download:
        rejects.click()
    saved = download.value.path()
    assert "line" in saved.read_text().splitlines()[0]
    watched.screenshot("imports-done")


def test_a_mapping_mistake_is_explained_on_the_form(console: LiveServer, watched: Watched) -> None:
    watched.allowed_statuses.add(400)
    page = watched.page
    sign_in(page, console.url, "/imports")
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "x.csv", "mimeType": "text/csv", "buffer": b"email\na@b.co\n"}]
    )
    page.get_by_label("Identifiers: one per line").fill("email")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("alert")).to_contain_text("should read `name = column`")
    assert page.get_by_label("Identifiers: one per line").input_value() == "email"


def test_unmerge_from_the_profile_page(console: LiveServer, watched: Watched) -> None:
    found = httpx.get(
        f"{console.url}/api/profiles",
        params={"identifier": "@", "limit": 200},
        headers=console.admin,
    ).json()["items"]
    person = next(p for p in found if len(p["identifiers"]) >= 2)
    first = next(i for i in person["identifiers"] if i.startswith("email:"))
    second = next(i for i in person["identifiers"] if not i.startswith("email:"))
    page = watched.page
    sign_in(page, console.url, f"/profiles/{person['profile_id']}")
    page.get_by_text("These are not the same person: unmerge").click()
    page.get_by_label("Keep this identifier here").select_option(first)
    page.get_by_label("Separate this identifier").select_option(second)
    page.get_by_label("Reason (kept with the unmerge)").fill("test")
    page.get_by_role("button", name="Unmerge").click()
    expect(page.get_by_role("status").first).to_contain_text("Unmerged:")
    table = page.locator("section[aria-labelledby=identifiers] table").inner_text()
    value = second.split(":", 1)[1]
    assert first.split(":", 1)[1] in table and value not in table
