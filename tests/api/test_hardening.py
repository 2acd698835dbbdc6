"""Hardening over real HTTP: security headers, the API documentation served locally,
odd trait keys, the sign-in limit, concurrent admin writes, and 500s that keep the
connection."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ADMIN_TOKEN, LiveServer


def signed_in(server: LiveServer) -> httpx.Client:
    client = httpx.Client(base_url=server.url)
    answer = client.post("/sign-in", data={"token": ADMIN_TOKEN, "next": "/"})
    assert answer.status_code == 303
    return client


def test_every_answer_forbids_framing_sniffing_and_foreign_code(server: LiveServer) -> None:
    console = signed_in(server)
    answers = [console.get(path) for path in ("/sign-in", "/", "/profiles", "/docs")]
    console.close()
    answers.append(httpx.get(f"{server.url}/api/health"))
    for answer in answers:
        assert answer.status_code == 200, answer.url
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_api_documentation_references_no_other_host_and_its_files_load(
    server: LiveServer,
) -> None:
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert "//" not in re.sub(r"<!--.*?-->", "", page.text).replace("http://www.w3.org", "")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        assert httpx.get(f"{server.url}{asset}").status_code == 200, asset
    assert httpx.get(f"{server.url}/redoc").status_code == 404  # it came from a CDN


def test_trait_keys_with_backslashes_are_searched_not_500(server: LiveServer) -> None:
    found = httpx.get(f"{server.url}/api/profiles", params={"trait": "a\\=x"},
                      headers=server.admin)  # fmt: skip
    assert found.status_code == 200 and found.json() == []
    console = signed_in(server)
    page = console.get("/profiles", params={"q": "a\\=x"})
    console.close()
    assert page.status_code == 200
