"""Small defects at the edges: the imports list is paged like the others, and segment
names that are path words are refused at create."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_imports import upload
from tests.conftest import ADMIN_TOKEN, LiveServer


@pytest.mark.parametrize("name", ["overlap", "new", "check", "preview"])
def test_a_segment_named_like_a_path_word_is_refused_with_the_reserved_words(
    server: LiveServer, name: str
) -> None:
    answer = httpx.post(f"{server.url}/api/segments", headers=server.admin,
                        json={"name": name, "query": "known"})  # fmt: skip
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == "segment_name_reserved"
    assert "check, new, overlap, preview" in body["message"]
    listed = httpx.get(f"{server.url}/api/segments", headers=server.admin).json()
    assert name not in [segment["name"] for segment in listed]


def test_the_console_refuses_a_reserved_segment_name_too(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as console:
        console.post("/sign-in", data={"token": ADMIN_TOKEN})
        page = console.post("/segments", data={"name": "overlap", "query": "known"})
    assert page.status_code == 400
    assert "reserved" in page.text


def test_the_imports_list_is_a_page_walked_with_its_cursor(server: LiveServer) -> None:
    server.create_source("paged-imports", "crm")
    for number in range(3):
        content = f"id,note\npaged-{number},x\n".encode()
        assert upload(server, "paged-imports", f"paged-{number}.csv", content).status_code == 200
    api = f"{server.url}/api/imports"
    first = httpx.get(api, headers=server.admin, params={"limit": 2}).json()
    assert set(first) == {"items", "total", "limit", "next_cursor"}
    assert len(first["items"]) == 2 and first["total"] >= 3 and first["next_cursor"]
    seen = [item["id"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = httpx.get(api, headers=server.admin, params={"limit": 2, "cursor": cursor}).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == first["total"]
    newest = [i["file_name"] for i in first["items"]]
    assert newest == ["paged-2.csv", "paged-1.csv"]


def test_a_foreign_cursor_on_the_imports_is_a_400(server: LiveServer) -> None:
    answer = httpx.get(f"{server.url}/api/imports", headers=server.admin,
                       params={"cursor": "not-a-cursor"})  # fmt: skip
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/segments/preview", {"query": "known", "sample": True}, "sample"),
        ("/api/segments/preview", {"query": "known", "sample": "5"}, "sample"),
        ("/api/audiences/lookalikes", {"name": "l", "seed": "s", "reach": True}, "reach"),
        ("/api/sources", {"name": "strict-web", "channel": 1}, "channel"),
    ],
)
def test_admin_bodies_refuse_values_a_coercion_would_hide(
    server: LiveServer, path: str, body: dict[str, object], field: str
) -> None:
    answer = httpx.post(f"{server.url}{path}", headers=server.admin, json=body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["message"]


def test_a_whole_number_is_still_a_share(server: LiveServer) -> None:
    """A float field takes a JSON integer: strictness refuses coercions, not numbers."""
    created = httpx.post(f"{server.url}/api/segments", headers=server.admin,
                         json={"name": "strict-all", "query": "known"})  # fmt: skip
    assert created.status_code == 201, created.text
    answer = httpx.post(f"{server.url}/api/audiences/strict-all/holdout", headers=server.admin,
                        json={"share": 0})  # fmt: skip
    assert answer.status_code == 400  # 0 is below the bound, and says so (not a type error)
    assert "greater than 0" in answer.json()["message"]
