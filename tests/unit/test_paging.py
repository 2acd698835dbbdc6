"""Paging cursors and page sizes: opaque, checked, and bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.errors import InvalidCursor, InvalidField
from tessera.paging import check_limit, decode_cursor, encode_cursor, page_of


@given(st.text(max_size=40))
def test_a_text_key_survives_its_cursor(key: str) -> None:
    assert decode_cursor("members", encode_cursor("members", key), str) == key


@given(st.integers(min_value=0, max_value=2**62))
def test_a_number_key_survives_its_cursor(key: int) -> None:
    assert decode_cursor("rejected", encode_cursor("rejected", key), int) == key


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor("members", None, str) is None
    assert decode_cursor("members", "", str) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "é",
        "%%%",
        encode_cursor("rejected", 5),  # another list's cursor
        encode_cursor("members", 5),  # the wrong key type
        encode_cursor("members", "prf_1")[:-2],  # cut short
        "W10",  # base64 of []
    ],
)
def test_a_cursor_this_list_did_not_hand_out_is_a_clear_400(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as raised:
        decode_cursor("members", cursor, str)
    assert raised.value.status == 400 and raised.value.code == "invalid_cursor"
    assert raised.value.field == "cursor"
    assert "next_cursor" in raised.value.message


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_a_page_size_outside_the_bounds_names_them(limit: int) -> None:
    with pytest.raises(InvalidField, match="from 1 to 1,000"):
        check_limit(limit, 1000)


def test_a_page_says_whether_another_follows() -> None:
    rows = [{"id": n} for n in range(4)]
    more = page_of(rows, limit=3, total=10, kind="rejected", key="id")
    assert [r["id"] for r in more.items] == [0, 1, 2]
    assert decode_cursor("rejected", more.next_cursor, int) == 2
    last = page_of(rows[:3], limit=3, total=3, kind="rejected", key="id")
    assert last.next_cursor is None
    assert last.model_dump() == {"items": rows[:3], "total": 3, "limit": 3, "next_cursor": None}
