"""Identifiers are never lost without a trace (issue 10, C): lenient normalisation keeps what
the platforms keep, and a value that still cannot be an identifier is recorded with its
reason, in the 360 view (from memory and from the store alike), explain and stats."""

from __future__ import annotations

import csv
import io
from typing import Any

from tessera.audiences import exports, platforms
from tessera.events import log
from tessera.events.contract import Envelope, check_message
from tessera.events.timestamps import now_micros
from tessera.identity import explain as identity
from tessera.identity.identifiers import Identifier
from tessera.identity.lookup import find_profile
from tessera.profiles import view
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.settings import Settings
from tests.integration.helpers import send, snapshot


def identify(user_id: str, message_id: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": user_id, "messageId": message_id, "traits": traits}


def test_an_email_with_a_space_and_a_phone_outside_the_metadata_become_identifiers(
    runtime: Runtime,
) -> None:
    send(
        runtime,
        [identify("u1", "m1", email="Jean.Dupont @Example.com", phone="+33 6 39 98 76 54")],
    )
    runtime.pipeline.process()
    profile = find_profile(runtime.store, Identifier("user_id", "u1"))
    for identifier in (
        Identifier("email", "jean.dupont@example.com"),
        Identifier("phone", "+33639987654"),
    ):
        assert find_profile(runtime.store, identifier) == profile
    assert view.profile_from_store(runtime.store, profile)["dropped_identifiers"] == []
    assert log.stats(runtime.store)["dropped_identifiers"] == 0


def test_values_that_cannot_be_identifiers_are_recorded_once_with_their_reason(
    runtime: Runtime,
) -> None:
    send(
        runtime,
        [
            identify("u2", "m1", email="jean.dupont@", phone="06 12 34 56 78"),
            {"type": "track", "userId": "u2", "event": "Viewed", "messageId": "m2",
             "context": {"traits": {"email": "jean.dupont@"}}},
            identify("u1", "m3", email="u1@x.co"),
        ],
    )  # fmt: skip
    runtime.pipeline.process()
    profile = find_profile(runtime.store, Identifier("user_id", "u2"))
    from_store = view.profile_from_store(runtime.store, profile)
    from_memory = runtime.pipeline.read_profile(profile)
    assert from_memory == from_store
    dropped = from_store["dropped_identifiers"]
    assert [(d["type"], d["value"], d["seq"]) for d in dropped] == [
        ("email", "je…t@", 1),
        ("phone", "06…78", 1),
    ]
    assert dropped[0]["reason"].startswith("not an e-mail address")
    assert "TESSERA_DEFAULT_REGION" in dropped[1]["reason"]
    assert from_store["merges"] == []  # they are not merges
    assert log.stats(runtime.store)["dropped_identifiers"] == 2

    answer = identity.why(runtime, "user_id:u2", "user_id:u1")
    assert not answer.same_profile
    assert [d["type"] for d in answer.dropped_identifiers["first"]] == ["email", "phone"]
    assert answer.dropped_identifiers["second"] == []


def test_an_event_with_no_usable_identifier_is_still_counted(runtime: Runtime) -> None:
    """An imported row whose only identifier is a malformed e-mail joins no profile; its
    value is recorded (with no profile) rather than vanishing."""
    source = runtime.sources.create("crm", "crm").source
    envelope = Envelope(source.id, source.channel, now_micros(), require_segment_ids=False)
    row = check_message(
        {"type": "identify", "messageId": "r1", "traits": {"email": "nobody at x.co"}},
        envelope,
        default_type=None,
        max_bytes=1 << 20,
    )
    runtime.writer.write([row])
    runtime.pipeline.process()
    assert log.stats(runtime.store)["dropped_identifiers"] == 1


def test_dropped_values_follow_merges_and_survive_restarts_like_the_rest(
    settings: Settings,
) -> None:
    messages = [
        {"type": "track", "anonymousId": "a1", "event": "Viewed", "messageId": "m1",
         "context": {"traits": {"email": "bad@nowhere"}}},
        identify("u1", "m2", email="u1@x.co"),
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "m3"},
        {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "m4",
         "context": {"traits": {"email": "bad@nowhere"}}},
    ]  # fmt: skip
    runtime = Runtime.open(settings)
    try:
        for message in messages:  # one batch each, the process restarted in between
            send(runtime, [message])
            runtime.pipeline.process()
            runtime.close()
            runtime = Runtime.open(settings)
        profile = find_profile(runtime.store, Identifier("user_id", "u1"))
        dropped = view.profile_from_store(runtime.store, profile)["dropped_identifiers"]
        assert [(d["value"], d["seq"]) for d in dropped] == [("ba…re", 1)]
        incremental = snapshot(runtime)
        runtime.pipeline.rebuild()
        assert snapshot(runtime) == incremental
    finally:
        runtime.close()


def test_the_exported_person_keeps_the_address_and_phone_identity_kept(runtime: Runtime) -> None:
    """Before, `Jean.Dupont @Example.com` never became an identifier and the person was
    exported without an e-mail (and `+33 6 39...` without a phone)."""
    consent = {"consent": {"categoryPreferences": {"Advertising": True}}}
    send(
        runtime,
        [{"type": "identify", "userId": "jd", "messageId": "m1", "context": consent,
          "traits": {"email": "Jean.Dupont @Example.com", "phone": "+33 6 39 98 76 54"}}],
    )  # fmt: skip
    runtime.pipeline.process()
    service.create(runtime.store, "everyone", "has user_id", set())
    buffer = io.StringIO()
    exports.export(runtime.store, "everyone", "google", buffer, "required")
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert rows[1] == [
        platforms.sha256_hex("jean.dupont@example.com"),
        platforms.sha256_hex("+33639987654"),
    ]
