"""Big answers over HTTP on a real server: cursor pages, totals, bounds."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import LiveServer, basic_auth

PEOPLE = 60


def post_people(server: LiveServer, key: str, users: list[str], plan: str = "pro") -> None:
    batch = [
        {"type": "identify", "userId": user, "messageId": f"paging-{user}",
         "traits": {"plan": plan, "email": f"{user}@example.com"}}
        for user in users
    ]  # fmt: skip
    answer = httpx.post(
        f"{server.url}/v1/batch",
        content=orjson.dumps({"batch": batch}),
        headers={"Authorization": basic_auth(key)},
    )
    assert answer.status_code == 200, answer.text


def get(server: LiveServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=server.admin)


@pytest.fixture(scope="module")
def paging_source(server: LiveServer) -> str:
    key = server.create_source("paging-web", "web")
    post_people(server, key, [f"pg-{n:03d}" for n in range(PEOPLE)])
    server.caught_up()
    created = httpx.post(
        f"{server.url}/api/segments",
        headers=server.admin,
        json={"name": "paging-pro", "query": 'traits.plan = "pro" and has user_id'},
    )
    assert created.status_code == 201, created.text
    return key


def test_walking_member_pages_while_people_arrive_gives_each_member_once(
    server: LiveServer, paging_source: str
) -> None:
    path = "/api/segments/paging-pro/members"
    seen: list[str] = []
    totals: list[int] = []
    cursor: str | None = None
    arrivals = 0
    while True:
        page = get(server, path, limit=7, **({"cursor": cursor} if cursor else {})).json()
        seen += [m["profile_id"] for m in page["items"]]
        totals.append(page["total"])
        assert all(m["user_id"] and m["email"] == f"{m['user_id']}@example.com"
                   for m in page["items"])  # fmt: skip
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # New members arrive in the middle of the walk; the walk must not repeat or
        # skip anyone who was a member all along.
        post_people(server, paging_source, [f"pg-late-{arrivals}-{n}" for n in range(3)])
        arrivals += 1
    assert len(seen) == len(set(seen)), "a member came twice"
    assert seen == sorted(seen)
    original = {
        get(server, "/api/profiles/user_id:" + f"pg-{n:03d}", events=0).json()["profile_id"]
        for n in range(PEOPLE)
    }
    assert original <= set(seen), "a member was skipped"
    assert totals[0] >= PEOPLE and totals == sorted(totals)
    server.caught_up()
    # Memberships follow the processed events within the streaming interval
    # (segment_interval_seconds): the last arrivals may wait for one more flush.
    expected, deadline = PEOPLE + 3 * arrivals, time.monotonic() + 20
    while (everyone := get(server, path, limit=10_000).json())["total"] < expected:
        assert time.monotonic() < deadline, f"{everyone['total']} members, not {expected}"
        time.sleep(0.2)
    assert everyone["total"] == len(everyone["items"]) == expected
    assert everyone["next_cursor"] is None


def test_every_list_pages_with_a_total(server: LiveServer, paging_source: str) -> None:
    for path, params in [
        ("/api/profiles", {"identifier": "pg-0"}),
        ("/api/events", {"source": "paging-web"}),
        ("/api/events/rejected", {}),
    ]:
        first = get(server, path, limit=2, **params).json()
        assert set(first) == {"items", "total", "limit", "next_cursor"}, path
        assert len(first["items"]) <= 2 and first["limit"] == 2
        if first["total"] > 2:
            second = get(server, path, limit=2, cursor=first["next_cursor"], **params).json()
            assert second["items"] and second["items"] != first["items"], path
    found = get(server, "/api/profiles", identifier="pg-0", limit=200).json()
    assert found["total"] == len(found["items"]) == 60


@pytest.mark.parametrize(
    "path",
    ["/api/segments/paging-pro/members", "/api/profiles?identifier=pg", "/api/events",
     "/api/events/rejected"],
)  # fmt: skip
def test_a_foreign_cursor_or_an_oversized_page_is_a_400_naming_it(
    server: LiveServer, paging_source: str, path: str
) -> None:
    bad = httpx.get(f"{server.url}{path}", params={"cursor": "eyJ4Ijox"}, headers=server.admin)
    assert bad.status_code == 400
    assert (bad.json()["code"], bad.json()["field"]) == ("invalid_cursor", "cursor")
    huge = httpx.get(f"{server.url}{path}", params={"limit": 10**6}, headers=server.admin)
    assert huge.status_code == 400 and "limit" in huge.json()["message"]
