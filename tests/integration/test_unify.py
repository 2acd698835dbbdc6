"""Identity and profiles on a real store: alias, explain, unmerge, as-of, computed traits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.errors import Conflict, InvalidField, NotFound, UnreadableFile
from tessera.identity import explain as identity
from tessera.identity import unmerging
from tessera.identity.lookup import identifier_from_text, lookup
from tessera.profiles import catalogue, view
from tessera.profiles.asof import profile_as_of
from tessera.runtime import Runtime
from tests.integration.helpers import send

JANE = [
    {"type": "page", "anonymousId": "cookie-1", "messageId": "1",
     "timestamp": "2024-03-01T10:00:00Z"},
    {"type": "identify", "anonymousId": "cookie-1", "userId": "jane", "messageId": "2",
     "traits": {"email": "Jane@X.com", "name": "Jane"}, "timestamp": "2024-03-02T10:00:00Z"},
    {"type": "track", "userId": "jane", "event": "Order Completed", "messageId": "3",
     "properties": {"revenue": 30, "category": "shoes"}, "timestamp": "2024-03-03T10:00:00Z"},
    {"type": "track", "anonymousId": "cookie-2", "event": "Order Completed", "messageId": "4",
     "context": {"traits": {"email": "jane@x.com"}},
     "properties": {"revenue": 10, "category": "hats"}, "timestamp": "2024-03-04T10:00:00Z"},
]  # fmt: skip


def profile_of(runtime: Runtime, reference: str) -> str:
    return lookup(runtime.store, reference, None)


def test_events_from_every_identifier_land_in_one_profile(runtime: Runtime) -> None:
    send(runtime, JANE)
    runtime.pipeline.process()
    profile = profile_of(runtime, "email: JANE@x.com ")
    assert profile == profile_of(runtime, "anonymous_id:cookie-2")
    shown = view.profile_view(runtime.store, profile)
    assert shown["event_count"] == 4
    assert shown["traits"] == {"email": "jane@x.com", "name": "Jane"}
    assert shown["trait_sources"]["email"]["seq"] == 4  # the newest value, and where from
    assert shown["computed_traits"]["order_count"] == 2
    assert shown["computed_traits"]["total_revenue"] == 40.0
    assert [e["seq"] for e in shown["events"]["items"]] == [4, 3, 2, 1]


def test_alias_joins_the_previous_id(runtime: Runtime) -> None:
    send(
        runtime,
        [
            {"type": "page", "anonymousId": "old-anon", "messageId": "1"},
            {"type": "alias", "previousId": "old-anon", "userId": "new-user", "messageId": "2"},
        ],
    )
    runtime.pipeline.process()
    assert profile_of(runtime, "user_id:new-user") == profile_of(runtime, "anonymous_id:old-anon")


def test_why_reads_both_identifiers_as_typed_and_explains_like_the_parsed_pair(
    runtime: Runtime,
) -> None:
    send(runtime, JANE)
    runtime.pipeline.process()
    answer = identity.why(runtime, "anonymous_id:cookie-1", " EMAIL:Jane@X.com ")
    assert answer == identity.why(runtime, "anonymous_id:cookie-1", "email:jane@x.com")
    assert answer.same_profile and answer.second == "email:jane@x.com"
    with pytest.raises(InvalidField):
        identity.why(runtime, "anonymous_id:cookie-1", "no-colon")


def test_explain_gives_the_chain_with_events(runtime: Runtime) -> None:
    send(runtime, JANE)
    runtime.pipeline.process()
    answer = identity.why(runtime, "anonymous_id:cookie-1", "anonymous_id:cookie-2")
    assert answer.same_profile
    steps = [(s["from"], s["to"], s["seq"]) for s in answer.chain]
    assert steps == [
        ("anonymous_id:cookie-1", "email:jane@x.com", 2),
        ("email:jane@x.com", "anonymous_id:cookie-2", 4),
    ]
    assert "identify" in answer.chain[0]["because"]


def test_unmerge_splits_and_moves_events_and_traits_back(runtime: Runtime) -> None:
    # cookie-2 is a shared computer: someone browsed on it before Jane ordered there.
    shared = {
        "type": "track",
        "anonymousId": "cookie-2",
        "event": "Order Completed",
        "messageId": "0",
        "properties": {"revenue": 99},
        "traits": {"name": "Bob"},
        "context": {"traits": {"name": "Bob"}},
        "timestamp": "2024-02-01T10:00:00Z",
    }
    send(runtime, [shared, *JANE])
    runtime.pipeline.process()
    assert profile_of(runtime, "anonymous_id:cookie-2") == profile_of(runtime, "user_id:jane")
    result = unmerging.unmerge(
        runtime, "email:jane@x.com", "anonymous_id:cookie-2", "a shared computer"
    )
    assert result.first_profile != result.second_profile
    jane = view.profile_view(runtime.store, result.first_profile)
    other = view.profile_view(runtime.store, result.second_profile)
    # The order that carried Jane's e-mail stays hers (e-mail outranks a cookie); the
    # shared computer's own history moves back out, with its traits.
    assert jane["event_count"] == 4 and other["event_count"] == 1
    assert jane["computed_traits"]["total_revenue"] == 40.0
    assert other["computed_traits"]["total_revenue"] == 99.0
    assert jane["traits"]["name"] == "Jane" and other["traits"]["name"] == "Bob"
    assert jane["profile_id"] == profile_of(runtime, "anonymous_id:cookie-1")  # id kept
    assert unmerging.blocks(runtime.store)[0].reason == "a shared computer"
    with pytest.raises(Conflict, match="already in different profiles"):
        unmerging.block(
            runtime.store,
            identifier_from_text("email:jane@x.com", None),
            identifier_from_text("anonymous_id:cookie-2", None),
            None,
        )


def test_as_of_replays_the_log(runtime: Runtime) -> None:
    send(runtime, JANE[:2])
    runtime.store.execute("UPDATE events SET received_at = TIMESTAMP '2024-03-02 12:00:00'")
    send(
        runtime,
        [
            {
                **JANE[1],
                "messageId": "5",
                "traits": {"name": "Jane Doe"},
                "timestamp": "2024-03-05T10:00:00Z",
            }
        ],
    )
    runtime.pipeline.process()
    then = profile_as_of(runtime.store, runtime.settings, "anonymous_id:cookie-1", "2024-03-03")
    assert then["traits"]["name"] == "Jane" and then["event_count"] == 2
    now = view.profile_view(runtime.store, profile_of(runtime, "anonymous_id:cookie-1"))
    assert now["traits"]["name"] == "Jane Doe"
    with pytest.raises(NotFound):
        profile_as_of(runtime.store, runtime.settings, "user_id:jane", "2024-01-01")
    with pytest.raises(InvalidField, match="not a date"):
        profile_as_of(runtime.store, runtime.settings, "user_id:jane", "last tuesday")


def test_conflicts_and_the_breaker_are_in_the_ledger(settings) -> None:  # type: ignore[no-untyped-def]
    runtime = Runtime.open(settings.model_copy(update={"identity_max_identifiers": 3}))
    try:
        send(
            runtime,
            [
                {"type": "identify", "userId": "jane", "anonymousId": "tablet", "messageId": "1"},
                {"type": "identify", "userId": "bob", "anonymousId": "tablet", "messageId": "2"},
                {
                    "type": "page",
                    "anonymousId": "kiosk",
                    "messageId": "3",
                    "context": {"device": {"id": "d1"}},
                },
                {
                    "type": "page",
                    "anonymousId": "kiosk",
                    "messageId": "4",
                    "context": {"device": {"id": "d2"}},
                },
            ],
        )
        runtime.pipeline.process()
        rules = dict(
            runtime.store.fetch_all(
                "SELECT kind, rule FROM identity_ledger WHERE kind IN ('conflict', 'breaker')"
            )
        )
        assert "user_id" in rules["conflict"]
        assert "3 identifiers" in rules["breaker"]
        flagged = view.profile_view(runtime.store, profile_of(runtime, "anonymous_id:kiosk"))
        assert flagged["flagged"]
    finally:
        runtime.close()


def test_computed_traits_from_definitions(runtime: Runtime) -> None:
    send(runtime, JANE)
    catalogue.save_definition(
        runtime.store,
        {
            "name": "favourite_category",
            "function": "most_frequent",
            "event": "Order Completed",
            "property": "category",
            "where": {"category": "hats"},
        },
    )
    runtime.pipeline.process()
    shown = view.profile_view(runtime.store, profile_of(runtime, "user_id:jane"))
    assert shown["computed_traits"]["favourite_category"] == "hats"
    assert shown["computed_traits"]["rfm_segment"] == "111"  # the only customer
    with pytest.raises(InvalidField, match="needs `property:`"):
        catalogue.save_definition(runtime.store, {"name": "x", "function": "sum"})


def test_search_by_identifier_and_trait(runtime: Runtime) -> None:
    send(runtime, JANE)
    runtime.pipeline.process()
    assert view.search(runtime.store, identifier="jane@").items[0]["email"] == "jane@x.com"
    assert view.search(runtime.store, trait="name=jane").total == 1
    with pytest.raises(InvalidField, match="KEY=VALUE"):
        view.search(runtime.store, trait="name")


def test_an_identifier_a_limit_keeps_apart_still_has_a_profile(settings) -> None:  # type: ignore[no-untyped-def]
    limited = settings.model_copy(update={"identity_rules": {"email": {"limit": 1}}})
    runtime = Runtime.open(limited)
    try:
        send(
            runtime,
            [
                {
                    "type": "identify",
                    "userId": "jane",
                    "traits": {"email": "a@x.co"},
                    "messageId": "1",
                },
                {
                    "type": "identify",
                    "userId": "jane",
                    "traits": {"email": "b@x.co"},
                    "messageId": "2",
                },
            ],
        )
        runtime.pipeline.process()
        apart = profile_of(runtime, "email:b@x.co")
        assert apart != profile_of(runtime, "user_id:jane")
        assert view.profile_view(runtime.store, apart)["event_count"] == 0
    finally:
        runtime.close()


def test_the_memory_view_equals_the_store_view(runtime: Runtime) -> None:
    """The server answers look-ups from the pipeline's memory; the CLI from the store.
    Both must say the same, for every profile, merges and unmerges included."""
    send(runtime, JANE)
    send(
        runtime,
        [
            {
                "type": "identify",
                "userId": "bob",
                "anonymousId": "cookie-1",
                "messageId": "b1",
                "traits": {"name": "Bob"},
            }
        ],
    )
    runtime.pipeline.process()
    runtime.pipeline.computed = catalogue.load(runtime.store)
    profiles = [
        r[0]
        for r in runtime.store.fetch_all(
            "SELECT profile_id FROM profiles WHERE merged_into IS NULL"
        )
    ]
    assert len(profiles) >= 2
    for profile in profiles:
        assert runtime.pipeline.read_profile(profile) == view.profile_from_store(
            runtime.store, profile
        )


def test_a_gap_in_the_log_is_not_its_end(runtime: Runtime) -> None:
    send(
        runtime, [{"type": "page", "anonymousId": f"a{n}", "messageId": str(n)} for n in range(30)]
    )
    runtime.store.execute("DELETE FROM events WHERE seq BETWEEN 5 AND 25")  # erased
    limited = runtime.settings.model_copy(update={"pipeline_batch_size": 10})
    from tessera.pipeline import Pipeline

    run = Pipeline(runtime.store, limited).process()
    assert run.events == 9 and runtime.pipeline.lag().lag_events == 0


def test_an_unreadable_computed_traits_file_is_named_as_such(tmp_path: Path) -> None:
    # Was an InvalidField with no field: the file, not a field, is at fault.
    broken = tmp_path / "traits.yml"
    broken.write_text("- name: [unclosed\n")
    with pytest.raises(UnreadableFile, match=r"cannot read computed traits from .*traits\.yml"):
        catalogue.load_file(broken)
