"""Big lists on a real store: every page walked once, totals, main identifiers."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.errors import InvalidCursor, InvalidField
from tessera.events import log
from tessera.events.contract import Rejection
from tessera.events.sink import DeadLetter
from tessera.events.timestamps import now_micros
from tessera.paging import Page, encode_cursor
from tessera.profiles import view
from tessera.runtime import Runtime
from tessera.segments import service
from tests.integration.helpers import send

COMPUTED: set[str] = set()
PEOPLE = 23


def identify(user: str, plan: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"id-{user}",
        "traits": {"plan": plan, "email": f"{user}@example.com", **extra},
    }


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    send(runtime, [identify(f"user-{n:02d}", "pro") for n in range(PEOPLE)])
    send(runtime, [identify("free-1", "free")])
    runtime.pipeline.process()
    service.create(runtime.store, "pro", 'traits.plan = "pro"', COMPUTED)
    return runtime


def walk(first: Page, following: Any) -> list[Page]:
    pages = [first]
    while pages[-1].next_cursor is not None:
        pages.append(following(pages[-1].next_cursor))
    return pages


def test_walking_the_member_pages_gives_every_member_once_in_profile_id_order(
    shop: Runtime,
) -> None:
    pages = walk(
        service.members(shop.store, "pro", limit=5),
        lambda cursor: service.members(shop.store, "pro", limit=5, cursor=cursor),
    )
    ids = [m["profile_id"] for page in pages for m in page.items]
    assert len(pages) == 5 and [len(p.items) for p in pages] == [5, 5, 5, 5, 3]
    assert ids == sorted(ids) and len(set(ids)) == PEOPLE
    assert set(ids) == set(service.member_ids(shop.store, "pro"))
    assert {p.total for p in pages} == {PEOPLE}


def test_members_carry_their_main_identifiers_even_from_merged_profiles(
    runtime: Runtime,
) -> None:
    # Two profiles (a visitor's cookie, a known user), then one event joins them.
    send(runtime, [{"type": "page", "anonymousId": "anon-7", "messageId": "m1"}])
    send(runtime, [identify("u-7", "pro", phone="+33 6 12 34 56 78")])
    runtime.pipeline.process()
    send(runtime, [{"type": "track", "event": "Login", "userId": "u-7",
                    "anonymousId": "anon-7", "messageId": "m2"}])  # fmt: skip
    runtime.pipeline.process()
    service.create(runtime.store, "pro", 'traits.plan = "pro"', COMPUTED)
    (member,) = service.members(runtime.store, "pro").items
    assert member["user_id"] == "u-7"
    assert member["email"] == "u-7@example.com"
    assert member["anonymous_id"] == "anon-7"
    assert member["phone"] == "+33612345678"
    assert set(member["identifiers"]) == {
        "user_id:u-7", "email:u-7@example.com", "anonymous_id:anon-7", "phone:+33612345678"
    }  # fmt: skip


def test_a_member_without_some_identifiers_has_none_for_them(runtime: Runtime) -> None:
    send(runtime, [{"type": "identify", "anonymousId": "anon-only", "messageId": "a",
                    "traits": {"plan": "pro"}}])  # fmt: skip
    runtime.pipeline.process()
    service.create(runtime.store, "pro", 'traits.plan = "pro"', COMPUTED)
    (member,) = service.members(runtime.store, "pro").items
    assert (member["user_id"], member["email"], member["phone"]) == (None, None, None)
    assert member["identifiers"] == ["anonymous_id:anon-only"]


def test_members_refuse_a_page_size_over_the_maximum_and_a_foreign_cursor(
    shop: Runtime,
) -> None:
    with pytest.raises(InvalidField, match="limit must be a whole number from 1 to 10,000"):
        service.members(shop.store, "pro", limit=10_001)
    with pytest.raises(InvalidCursor):
        service.members(shop.store, "pro", cursor="nonsense")


def test_search_pages_walk_every_match_once_with_the_total(shop: Runtime) -> None:
    pages = walk(
        view.search(shop.store, identifier="user-", limit=4),
        lambda cursor: view.search(shop.store, identifier="user-", limit=4, cursor=cursor),
    )
    ids = [p["profile_id"] for page in pages for p in page.items]
    assert len(ids) == len(set(ids)) == PEOPLE and ids == sorted(ids)
    assert {p.total for p in pages} == {PEOPLE}
    by_trait = view.search(shop.store, trait="plan=pro", limit=200)
    assert (by_trait.total, len(by_trait.items), by_trait.next_cursor) == (PEOPLE, PEOPLE, None)


def test_search_takes_percent_and_underscore_as_plain_characters(shop: Runtime) -> None:
    send(shop, [identify("a_b", "free"), identify("axb", "free")])
    shop.pipeline.process()
    found = view.search(shop.store, identifier="a_b")
    assert [p["identifiers"] for p in found.items] == [["email:a_b@example.com", "user_id:a_b"]]
    assert view.search(shop.store, identifier="%").total == 0


def test_rejected_pages_are_newest_first_each_message_once(runtime: Runtime) -> None:
    letters = [
        DeadLetter(None, now_micros(), Rejection("missing_field", "type", "no type", f"r{n}", "{}"))
        for n in range(12)
    ]
    runtime.writer.write([], letters)
    pages = walk(
        log.rejected(runtime.store, limit=5),
        lambda cursor: log.rejected(runtime.store, limit=5, cursor=cursor),
    )
    ids = [r["id"] for page in pages for r in page.items]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 12
    assert [r["message_id"] for r in pages[0].items][:1] == ["r11"]
    assert {p.total for p in pages} == {12}


def test_the_event_log_pages_backwards_and_forwards(shop: Runtime) -> None:
    backwards = walk(
        log.tail(shop.store, limit=10),
        lambda cursor: log.tail(shop.store, limit=10, cursor=cursor),
    )
    newest_first = [e["seq"] for page in backwards for e in page.items]
    assert newest_first == sorted(newest_first, reverse=True)
    assert len(newest_first) == PEOPLE + 1 == backwards[0].total
    forwards = walk(
        log.tail(shop.store, limit=10, after_seq=0),
        lambda cursor: log.tail(shop.store, limit=10, cursor=cursor),
    )
    assert [e["seq"] for page in forwards for e in page.items] == newest_first[::-1]
    with pytest.raises(InvalidCursor):
        log.tail(shop.store, cursor=encode_cursor("members", "prf_x"))
