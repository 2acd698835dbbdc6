"""Access in the console, in a real browser: an agent signs in as herself, looks one
customer up, sees the e-mail in clear and records a refusal with a reason; an analyst
sees the same profile masked and no admin pages; the admin reads the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, basic_auth, start_server
from tests.web.conftest import Watched, sign_in

pytestmark = pytest.mark.slow

EMAIL = "ines.martin@example.org"
PASSWORD = "a long enough passphrase"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("console-access") / "data",
                          TESSERA_COLLECTORS="0")  # fmt: skip
    key = server.create_source("shop", "web")
    sent = httpx.post(
        f"{server.url}/v1/identify",
        headers={"Authorization": basic_auth(key)},
        json={"userId": "u-ines", "traits": {"email": EMAIL, "city": "Lyon"}},
    )
    assert sent.status_code == 200
    server.caught_up()
    for name, role in (("ines-agent", "agent"), ("ana-analyst", "analyst")):
        made = httpx.post(
            f"{server.url}/api/users",
            headers=server.admin,
            json={"name": name, "role": role, "password": PASSWORD},
        )
        assert made.status_code == 201, made.text
    yield server
    server.stop()


def _sign_in_as(watched: Watched, url: str, name: str) -> None:
    page = watched.page
    page.goto(f"{url}/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_agent_analyst_and_admin_each_see_what_their_role_allows(
    live: LiveServer, watched: Watched
) -> None:
    page = watched.page
    _sign_in_as(watched, live.url, "ines-agent")
    assert page.url.endswith("/lookup")  # an agent's home: one customer at a time
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Profiles").count() == 0
    page.get_by_label("Identifier").fill(f"email:{EMAIL}")
    page.get_by_role("button", name="Look up").click()
    page.wait_for_load_state()
    assert EMAIL in page.content()
    page.get_by_label("Purpose").select_option("email")
    page.get_by_label("Choice").select_option("refuse")
    page.get_by_label("Why").fill("asked at the desk to stop e-mails")
    page.get_by_role("button", name="Record consent").click()
    page.wait_for_load_state()
    assert "Consent for email refused." in page.content()
    assert "asked at the desk to stop e-mails" in page.content()
    watched.screenshot("access-agent-profile")
    page.context.clear_cookies()

    _sign_in_as(watched, live.url, "ana-analyst")
    page.goto(f"{live.url}/profiles/email:{EMAIL}")
    assert EMAIL not in page.content() and "i•••@example.org" in page.content()
    assert page.get_by_role("button", name="Record consent").count() == 0
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Audit").count() == 0
    watched.allowed_statuses.add(403)
    page.goto(f"{live.url}/users")
    assert "cannot" in page.content()
    page.context.clear_cookies()

    sign_in(page, live.url, "/audit")
    assert "verifies" in page.content()
    page.get_by_label("Actor").fill("ines-agent")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    text = page.content()
    assert "profile.view" in text and "/consent" in text and "sign-in" in text
    watched.screenshot("access-audit")
