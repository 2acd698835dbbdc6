"""Taxonomies and third-party feeds on a real store, used in segments, and following an
anonymous visitor into the customer profile when they identify."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tessera.audiences import feeds, taxonomy
from tessera.errors import InvalidField, InvalidImportFile
from tessera.identity.lookup import lookup
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.segments.check import SegmentCheckError
from tests.integration.helpers import send

IAB = Path(__file__).resolve().parents[1] / "fixtures" / "iab"
NOW = datetime(2026, 3, 1, 12, 0)


def test_the_iab_files_load_whole() -> None:
    audience = taxonomy.parse((IAB / "audience-taxonomy-1.1.tsv").read_text().splitlines())
    content = taxonomy.parse(
        (IAB / "content-taxonomy-3.1.tsv").read_text(encoding="utf-8-sig").splitlines()
    )
    assert (len(audience.nodes), len(audience.rejects)) == (1558, 0)
    assert (len(content.nodes), len(content.rejects)) == (704, 0)
    travel = next(n for n in audience.nodes if n.id == "719")
    assert (travel.path, travel.parent_id, travel.tier) == ("Interest > Travel", "206", 2)


def test_bad_taxonomy_rows_are_rejected_with_reasons() -> None:
    parsed = taxonomy.parse([
        "Unique ID\tParent ID\tName\tTier 1\tTier 2",
        "1\t\tSports\tSports\t",
        "2\t1\tRunning\tSports\tRunning",
        "2\t1\tAgain\tSports\tAgain",
        "\t1\tNo id\tSports\tNo id",
        "3\t1\tNo tiers\t\t",
        "4\t99\tOrphan\tSports\tOrphan",
    ])  # fmt: skip
    assert [n.id for n in parsed.nodes] == ["1", "2"]
    reasons = " / ".join(reason for _, reason, _ in parsed.rejects)
    assert "appears twice" in reasons and "no Unique ID" in reasons
    assert "no tier names" in reasons and "parent 99 of 4 is not in the file" in reasons
    with pytest.raises(InvalidImportFile, match="Unique ID"):
        taxonomy.parse(["id,name", "1,x"])


@pytest.fixture
def shop(runtime: Runtime, tmp_path: Path) -> Runtime:
    taxonomy.load(runtime.store, IAB / "audience-taxonomy-1.1.tsv", "iab-audience", tmp_path)
    send(
        runtime,
        [
            # Third-party data counts only where consent allows advertising (by default a
            # recorded yes): both visitors accepted the banner, in a CMP's words.
            {
                "type": "page",
                "anonymousId": "visitor-1",
                "messageId": "1",
                "context": {
                    "externalIds": [{"id": "ck-1", "type": "cookie_id"}],
                    "consent": {"categoryPreferences": {"Advertising": True}},
                },
            },
            {
                "type": "page",
                "anonymousId": "visitor-2",
                "messageId": "2",
                "context": {
                    "externalIds": [{"id": "ck-2", "type": "cookie_id"}],
                    "consent": {"categoryPreferences": {"targeting": "granted"}},
                },
            },
            {
                "type": "identify",
                "userId": "u-3",
                "messageId": "3",
                "traits": {"email": "c@example.com"},
            },
        ],
    )
    runtime.pipeline.process()
    feed = tmp_path / "provider.csv"
    feed.write_text(
        "cookie_id,segments,cpm\n"
        "ck-1,720|IAB:754,1.5\n"  # Adventure Travel, and an app-purchase intent
        "ck-2,724,\n"  # Beach Travel (also under Travel)
        ",720,\n"  # no identifier
        "ck-9,999999,\n"  # not in the taxonomy
        "ck-3,720,lots\n"  # cpm not a number
    )
    summary = feeds.import_feed(
        runtime.store,
        feed,
        feeds.FeedOptions("travelco", lifetime_days=30, restrictions="no health targeting"),
        tmp_path,
        NOW,
    ).model_dump()
    assert (summary["accepted"], summary["rejected"], summary["memberships"]) == (2, 3, 3)
    reasons = Path(summary["reject_file"]).read_text()
    assert "no identifier" in reasons and "999999 not in taxonomy" in reasons
    assert "is not a number" in reasons
    return runtime


def members(runtime: Runtime, query: str, at: datetime = NOW) -> set[str]:
    return set(service.preview(runtime.store, query, set(), sample=100, now=at)["sample"])


def profile(runtime: Runtime, reference: str) -> str:
    return lookup(runtime.store, reference, None)


def test_third_party_segments_match_by_path_id_and_ancestor(shop: Runtime) -> None:
    one, two = profile(shop, "cookie_id:ck-1"), profile(shop, "cookie_id:ck-2")
    assert members(shop, 'has third_party "IAB:Interest > Travel"') == {one, two}
    assert members(shop, 'has third_party "Interest | Travel | Adventure Travel"') == {one}
    assert members(shop, "has third_party 724") == {two}
    assert members(shop, 'anonymous and has third_party "Interest > Travel"') == {one, two}
    assert members(shop, "known") == {profile(shop, "user_id:u-3")}
    # Memberships last 30 days from the import.
    assert members(shop, "has third_party 720", at=datetime(2026, 4, 15)) == set()


def test_third_party_data_counts_only_while_consent_allows_advertising(shop: Runtime) -> None:
    two = profile(shop, "cookie_id:ck-2")
    assert members(shop, "has third_party 724") == {two}
    send(shop, [{"type": "track", "event": "Consent Changed", "anonymousId": "visitor-2",
                 "messageId": "5", "context": {"consent": {"categoryPreferences": {
                     "advertising": False}}}}])  # fmt: skip
    shop.pipeline.process()
    assert members(shop, "has third_party 724") == set()
    assert members(shop, "not has third_party 724") >= {two}
    assert feeds.of_profile(shop.store, two, NOW, "required") == []
    service.create(shop.store, "beach", "has third_party 724", set(), NOW)
    assert service.member_ids(shop.store, "beach") == []
    send(shop, [{"type": "track", "event": "Consent Changed", "anonymousId": "visitor-2",
                 "messageId": "6", "context": {"consent": {"categoryPreferences": {
                     "advertising": True}}}}])  # fmt: skip
    shop.pipeline.process(sweep=False)
    # What streaming runs for the profiles a batch carrying consent touched.
    changed = service.evaluate_touched(shop.store, [two], NOW, service.Changes(consent=True))
    assert changed["beach"]["entered"] == 1
    assert service.member_ids(shop.store, "beach") == [two]


def test_an_unknown_third_party_segment_is_an_error_with_a_suggestion(shop: Runtime) -> None:
    with pytest.raises(SegmentCheckError) as caught:
        service.preview(shop.store, 'has third_party "Interest > Travle"', set())
    assert "did you mean 'interest > travel'?" in caught.value.message


def test_an_anonymous_visitor_brings_their_third_party_data_when_they_identify(
    shop: Runtime,
) -> None:
    send(
        shop,
        [
            {
                "type": "identify",
                "anonymousId": "visitor-1",
                "userId": "u-1",
                "messageId": "4",
                "traits": {"email": "ann@example.com"},
                "context": {"externalIds": [{"id": "ck-1", "type": "cookie_id"}]},
            }
        ],
    )
    shop.pipeline.process()
    ann = profile(shop, "email:ann@example.com")
    assert ann == profile(shop, "cookie_id:ck-1")
    assert ann in members(shop, 'known and has third_party "Interest > Travel"')
    listed = feeds.of_profile(shop.store, ann, NOW)
    assert {row.segment_id for row in listed} == {"720", "754"}
    assert "Interest > Travel > Adventure Travel" in {row.path for row in listed}
    assert {row.restrictions for row in listed} == {"no health targeting"}


def test_the_provider_catalogue_and_refreshing_a_feed(shop: Runtime, tmp_path: Path) -> None:
    rows = {r.segment_id: r.model_dump() for r in feeds.segments(shop.store, NOW)}
    assert rows["720"]["cpm"] == 1.5 and rows["720"]["lifetime_days"] == 30
    assert rows["724"]["members"] == 1
    again = tmp_path / "again.jsonl"
    again.write_text('{"cookie_id": "ck-2", "segments": ["724"]}\n')
    feeds.import_feed(shop.store, again, feeds.FeedOptions("travelco"), tmp_path, NOW)
    assert shop.store.fetch_one(
        "SELECT count(*) FROM third_party_memberships WHERE segment_id = '724'"
    ) == (1,)  # refreshed, not doubled


def test_a_feed_needs_its_taxonomy(runtime: Runtime, tmp_path: Path) -> None:
    feed = tmp_path / "f.csv"
    feed.write_text("cookie_id,segments\nck,720\n")
    with pytest.raises(InvalidField, match="is not loaded"):
        feeds.import_feed(runtime.store, feed, feeds.FeedOptions("x"), tmp_path, NOW)
