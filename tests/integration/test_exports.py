"""Audience exports on a real store: who is in the file (consent), and in what form."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tessera.audiences import exports, feeds, platforms, taxonomy
from tessera.errors import InvalidField
from tessera.runtime import Runtime
from tessera.segments import service
from tests.integration.helpers import send


def identify(user: str, message: str, consent: bool | None, **traits: object) -> dict[str, object]:
    context: dict[str, object] = {}
    if consent is not None:
        context["consent"] = {"categoryPreferences": {"Advertising": consent}}
    return {"type": "identify", "userId": user, "messageId": message, "traits": traits,
            "context": context, "timestamp": "2026-03-01T10:00:00Z"}  # fmt: skip


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    send(
        runtime,
        [
            identify("ann", "1", True, email="Ann.Lee+shop@gmail.com", phone="+33 6 12 34 56 78"),
            {
                "type": "track",
                "userId": "ann",
                "messageId": "2",
                "event": "App Opened",
                "context": {"device": {"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC"}},
                "anonymousId": "cookie-ann",
            },
            identify("bob", "3", False, email="bob@example.com"),
            identify("cid", "4", None, email="cid@example.com"),
            identify("dee", "5", True),
        ],
    )
    runtime.pipeline.process()
    service.create(runtime.store, "everyone", "has user_id", set())
    return runtime


def run(shop: Runtime, file_format: str, policy: str = "required") -> tuple[str, dict[str, object]]:
    buffer = io.StringIO()
    summary = exports.export(shop.store, "everyone", file_format, buffer, policy).model_dump()
    return buffer.getvalue(), summary


def test_google_file_has_only_consenting_people_hashed_googles_way(shop: Runtime) -> None:
    text, summary = run(shop, "google")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Email", "Phone"]
    assert rows[1] == [
        platforms.sha256_hex("annlee@gmail.com"),
        platforms.sha256_hex("+33612345678"),
    ]
    assert len(rows) == 2  # bob refused, cid never said, dee has neither e-mail nor phone
    assert summary == {"segment": "everyone", "format": "google", "members": 4,
                       "refused_consent": 2, "held_out": 0, "exported_profiles": 1,
                       "without_identifier": 1, "refused_advertising_ids": 0, "rows": 1,
                       "consent_policy": "required"}  # fmt: skip


def test_meta_file_hashes_metas_way_and_keeps_the_ad_id(shop: Runtime) -> None:
    text, _ = run(shop, "meta")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["email", "phone", "madid"]
    assert rows[1] == [
        platforms.sha256_hex("ann.lee+shop@gmail.com"),
        platforms.sha256_hex("33612345678"),
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
    ]


def test_unless_refused_adds_people_who_never_answered(shop: Runtime) -> None:
    text, summary = run(shop, "meta", policy="unless_refused")
    assert platforms.sha256_hex("cid@example.com") in text
    assert platforms.sha256_hex("bob@example.com") not in text
    assert summary["refused_consent"] == 1


def test_google_mobile_and_openrtb_carry_ids_unhashed(shop: Runtime) -> None:
    mobile, _ = run(shop, "google-mobile")
    assert mobile.splitlines() == ["Mobile Device ID", "6d92078a-8246-4ba4-ae5b-76104861e7dc"]
    lines = [orjson.loads(line) for line in run(shop, "openrtb")[0].splitlines()]
    assert {(line["id_type"], line["id"]) for line in lines} == {
        ("anonymous_id", "cookie-ann"),
        ("advertising_id", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
    }
    segment = lines[0]["user"]["data"][0]["segment"][0]
    assert segment["name"] == "everyone" and segment["id"].startswith("seg_")


def test_an_unknown_format_names_the_choices(shop: Runtime) -> None:
    with pytest.raises(InvalidField, match="google, google-mobile, meta, openrtb"):
        run(shop, "tiktok")


def test_openrtb_carries_iab_audience_ids_with_segtax_4(shop: Runtime, tmp_path: Path) -> None:
    iab = Path(__file__).resolve().parents[1] / "fixtures" / "iab" / "audience-taxonomy-1.1.tsv"
    taxonomy.load(shop.store, iab, "iab-audience", tmp_path)
    feed = tmp_path / "feed.csv"
    feed.write_text("anonymous_id,segments\ncookie-ann,720|724\n")
    now = datetime.now(UTC).replace(tzinfo=None)
    feeds.import_feed(shop.store, feed, feeds.FeedOptions("travelco"), tmp_path, now)
    lines = [orjson.loads(line) for line in run(shop, "openrtb")[0].splitlines()]
    data = lines[0]["user"]["data"]
    assert data[1] == {
        "name": "travelco",
        "segment": [{"id": "720"}, {"id": "724"}],
        "ext": {"segtax": exports.SEGTAX_IAB_AUDIENCE_1_1},
    }
    assert exports.SEGTAX_IAB_AUDIENCE_1_1 == 4


HOSTILE_AD_IDS = ["=cmd|' /c calc'!a0", '=HYPERLINK("http://evil.example","x")', "+1+1",
                  "@SUM(1)", "-2+3", "not-an-idfa"]  # fmt: skip


@pytest.fixture
def hostile(runtime: Runtime) -> Runtime:
    """One consenting person whose devices sent formulas as advertising ids, and one good id."""
    devices = [*HOSTILE_AD_IDS, "6D92078A-8246-4BA4-AE5B-76104861E7DC"]
    opened = [
        {"type": "track", "userId": "eve", "messageId": f"ad-{n}", "event": "App Opened",
         "context": {"device": {"advertisingId": ad_id}}}
        for n, ad_id in enumerate(devices)
    ]  # fmt: skip
    send(runtime, [identify("eve", "1", True, email="eve@example.com"), *opened])
    runtime.pipeline.process()
    service.create(runtime.store, "everyone", "has user_id", set())
    return runtime


@pytest.mark.parametrize("file_format", ["meta", "google-mobile", "openrtb"])
def test_advertising_ids_that_are_not_uuids_are_refused_and_counted(
    hostile: Runtime, file_format: str
) -> None:
    stored = hostile.store.fetch_all("SELECT value FROM identities WHERE type = 'advertising_id'")
    refused = len(stored) - 1  # what identity kept of the hostile ids; the good one goes out
    assert refused > 0
    text, summary = run(hostile, file_format)
    assert summary["refused_advertising_ids"] == refused
    assert "6d92078a-8246-4ba4-ae5b-76104861e7dc" in text
    for hostile_id in HOSTILE_AD_IDS:
        assert hostile_id.lower() not in text.lower()


@pytest.mark.parametrize("file_format", ["google", "meta", "google-mobile"])
def test_no_csv_cell_starts_like_a_formula(hostile: Runtime, file_format: str) -> None:
    text, _ = run(hostile, file_format)
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert cells and not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
