"""The console under its Content-Security-Policy: the API documentation comes from this
server, and the pages that used inline code (overlap shading, the live debugger, the error
page) still work. The `watched` fixture fails a test on any console error, which is how
Chromium reports a policy violation."""

from __future__ import annotations

import httpx
import orjson
from playwright.sync_api import expect

from tests.conftest import LiveServer, basic_auth
from tests.web.conftest import Watched, sign_in


def test_api_documentation_loads_nothing_from_another_host(
    server: LiveServer, watched: Watched
) -> None:
    requested: list[str] = []
    page = watched.page
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/docs")
    page.locator(".opblock").first.wait_for()  # Swagger UI ran, read /openapi.json, drew it
    expect(page.locator(".info .title")).to_contain_text("Tessera")
    assert requested and all(url.startswith(server.url) for url in requested), requested


def test_overlap_cells_are_shaded_without_inline_styles(
    server: LiveServer, watched: Watched
) -> None:
    key = server.create_source("csp-web", "web")
    batch = [{"type": "identify", "userId": f"csp{n}", "messageId": f"csp-{n}",
              "traits": {"plan": "pro" if n % 2 else "free"}} for n in range(4)]  # fmt: skip
    posted = httpx.post(f"{server.url}/v1/batch", content=orjson.dumps({"batch": batch}),
                        headers={"Authorization": basic_auth(key)})  # fmt: skip
    assert posted.status_code == 200
    server.caught_up()
    for name, query in (("csp-all", "has user_id"), ("csp-pro", 'traits.plan = "pro"')):
        created = httpx.post(f"{server.url}/api/segments", headers=server.admin,
                             json={"name": name, "query": query})  # fmt: skip
        assert created.status_code == 201, created.text
    page = watched.page
    sign_in(page, server.url, "/segments/overlap")
    cell = page.locator("td[data-share]").first
    cell.wait_for()
    assert cell.evaluate("cell => cell.style.getPropertyValue('--share')").endswith("%")
    assert page.locator("[style]").count() == page.locator("td[data-share]").count()


def test_live_debugger_polls_without_eval(server: LiveServer, watched: Watched) -> None:
    server.create_source("csp-debugger", "web")
    page = watched.page
    sign_in(page, server.url, "/sources/csp-debugger")
    with page.expect_request("**/sources/csp-debugger/events"):
        pass  # the every-2s poll ran (htmx's [condition] filter needed eval)


def test_error_page_go_back_link_needs_no_inline_script(
    server: LiveServer, watched: Watched
) -> None:
    watched.allowed_statuses.add(404)
    page = watched.page
    sign_in(page, server.url, "/segments")
    page.goto(f"{server.url}/segments/no-such-segment")
    page.get_by_role("link", name="Go back").click()
    page.wait_for_url("**/segments")
