"""The pipeline's dead letters (issue 10, A.3): an event that makes the pipeline fail is set
aside with its error after a bounded number of tries, the others are processed, a rebuild
agrees with the incremental state, and replay-failed lets the event in again after a fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tessera.events import failures, log
from tessera.events.contract import Envelope, check_message
from tessera.events.timestamps import now_micros
from tessera.identity.graph import profile_id_for
from tessera.identity.identifiers import Identifier
from tessera.identity.lookup import find_profile
from tessera.pipeline import Pipeline
from tessera.profiles.asof import profile_as_of
from tessera.profiles.summary import Summary
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import send, snapshot
from tests.integration.test_pipeline_invariants import messages

#: a trait nested so deep that the profile's trait state (which wraps each value in three
#: more levels) passes orjson's limit of 254: the pipeline cannot persist its profile
DEEP_TRAITS = '{"deep":' + "[" * 252 + "1" + "]" * 252 + "}"


def write_poison(runtime: Runtime, message_id: str, user_id: str = "deep") -> int:
    """Append an event whose traits are DEEP_TRAITS and return its seq. Such events were
    accepted before the collect API bounded nesting (issue 10, A.2), and the log keeps
    them for ever; it is written as the writer stores it, whatever today's ingest limit."""
    sources = {s.name: s for s in runtime.sources.list()}
    source = sources.get("web") or runtime.sources.create("web", "web").source
    envelope = Envelope(source.id, source.channel, now_micros())
    row = check_message(
        {"type": "identify", "userId": user_id, "messageId": message_id, "traits": {"a": 1}},
        envelope,
        default_type=None,
        max_bytes=1 << 20,
    )
    runtime.writer.write([row._replace(traits=DEEP_TRAITS)])
    last = runtime.store.fetch_one("SELECT max(seq) FROM events")
    assert last is not None
    return int(last[0])


def identify(user_id: str, message_id: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": user_id, "messageId": message_id, "traits": traits}


def profile_of(runtime: Runtime, text: str) -> str:
    return find_profile(runtime.store, Identifier(*text.split(":", 1)))


@pytest.fixture
def poisoned(settings: Settings) -> Iterator[tuple[Runtime, int]]:
    """good, poison, good, good, in one batch; two tries per batch (the setting)."""
    runtime = Runtime.open(settings.model_copy(update={"pipeline_max_attempts": 2}))
    send(runtime, [identify("u1", "m1", email="u1@x.co")])
    seq = write_poison(runtime, "m2")
    send(runtime, [identify("u2", "m3", city="Lyon"), identify("u1", "m4", city="Nice")])
    yield runtime, seq
    runtime.close()


def test_an_event_that_makes_the_pipeline_fail_is_set_aside_and_the_others_are_processed(
    poisoned: tuple[Runtime, int],
) -> None:
    runtime, seq = poisoned
    run = runtime.pipeline.process()
    assert run.failed == 1 and run.events == 4
    assert runtime.pipeline.lag().lag_events == 0
    # The events before and after it, in the same batch, all went through.
    first = runtime.pipeline.read_profile(profile_of(runtime, "user_id:u1"))
    assert first is not None and first["traits"] == {"email": "u1@x.co", "city": "Nice"}
    assert profile_of(runtime, "user_id:u2")
    with pytest.raises(Exception, match="no profile"):
        profile_of(runtime, "user_id:deep")
    [failed] = [f.model_dump() for f in failures.listing(runtime.store)]
    assert failed["seq"] == seq and failed["attempts"] == 2
    assert "Recursion limit" in failed["error"]
    assert failed["location"].startswith("tessera/")
    assert (failed["source"], failed["type"], failed["message_id"]) == ("web", "identify", "m2")
    assert log.stats(runtime.store)["pipeline_failed"] == 1


def test_set_aside_events_are_stepped_over_by_a_rebuild_and_after_a_restart(
    poisoned: tuple[Runtime, int], settings: Settings
) -> None:
    runtime, seq = poisoned
    runtime.pipeline.process()
    incremental = snapshot(runtime)
    rebuilt = runtime.pipeline.rebuild()
    assert rebuilt.failed == 0  # known poison: not tried (and failed) again
    assert snapshot(runtime) == incremental
    assert [f.seq for f in failures.listing(runtime.store)] == [seq]
    runtime.close()
    reopened = Runtime.open(runtime.settings)
    try:
        send(reopened, [identify("u3", "m5")])
        assert reopened.pipeline.process().failed == 0
        assert profile_of(reopened, "user_id:u3")
    finally:
        reopened.close()


def test_replaying_an_event_that_still_fails_sets_it_aside_again_and_changes_nothing(
    poisoned: tuple[Runtime, int],
) -> None:
    runtime, seq = poisoned
    runtime.pipeline.process()
    before = snapshot(runtime)
    for _ in range(2):  # idempotent
        replay = runtime.pipeline.replay_failed().report().model_dump()
        assert replay["replayed"] == 1 and replay["still_failing"] == [seq]
        assert snapshot(runtime) == before
        assert [f.seq for f in failures.listing(runtime.store)] == [seq]


def test_replay_failed_processes_set_aside_events_in_their_place_after_a_fix(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (injected here: the summary refuses a trait) sets an event aside; once the
    bug is fixed, replay-failed processes it where it stands in the log, as a rebuild
    would, and an empty second replay does nothing."""
    add_event = Summary.add_event

    def buggy(self: Summary, **kwargs: Any) -> None:
        if (kwargs.get("traits") or {}).get("plan") == "gold":
            raise ValueError("cannot handle gold")
        add_event(self, **kwargs)

    monkeypatch.setattr(Summary, "add_event", buggy)
    send(runtime, [identify("u1", "m1"), identify("u9", "m2", plan="gold"), identify("u2", "m3")])
    assert runtime.pipeline.process().failed == 1
    [failed] = [f.model_dump() for f in failures.listing(runtime.store)]
    assert (failed["error_type"], failed["error"]) == ("ValueError", "cannot handle gold")
    monkeypatch.setattr(Summary, "add_event", add_event)  # the fix

    replay = runtime.pipeline.replay_failed().report().model_dump()
    assert (replay["replayed"], replay["processed"], replay["still_failing"]) == (1, 1, [])
    assert [f.model_dump() for f in failures.listing(runtime.store)] == []
    # In its place: the profile it starts has the id a first run without the bug gives.
    assert profile_of(runtime, "user_id:u9") == profile_id_for(
        failed["seq"], Identifier("user_id", "u9")
    )
    incremental = snapshot(runtime)
    runtime.pipeline.rebuild()
    assert snapshot(runtime) == incremental
    assert runtime.pipeline.replay_failed().report().model_dump()["rebuild"] is None


def test_a_batch_with_several_bad_events_sets_aside_only_them(settings: Settings) -> None:
    runtime = Runtime.open(settings.model_copy(update={"pipeline_max_attempts": 1}))
    try:
        bad = []
        for index in range(40):
            if index in (3, 4, 31):
                bad.append(write_poison(runtime, f"p{index}", user_id=f"deep{index}"))
            else:
                send(runtime, [identify(f"u{index}", f"m{index}")])
        run = runtime.pipeline.process()
        assert run.failed == 3
        assert sorted(f.seq for f in failures.listing(runtime.store)) == bad
        good = runtime.store.fetch_one("SELECT count(*) FROM identities WHERE type = 'user_id'")
        assert good == (37,)
    finally:
        runtime.close()


def test_as_of_replays_step_over_set_aside_events(poisoned: tuple[Runtime, int]) -> None:
    runtime, _ = poisoned
    runtime.pipeline.process()
    profile = profile_as_of(runtime.store, runtime.settings, "user_id:u1", "2099-01-01")
    assert profile["traits"] == {"email": "u1@x.co", "city": "Nice"}


def test_when_memory_cannot_be_loaded_no_event_is_blamed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot give the pipeline its state is not the events' fault: nothing
    is set aside (else every event would be, one by one); the run fails and is retried."""
    send(runtime, [identify("u1", "m1"), identify("u2", "m2")])

    def broken(self: Pipeline) -> None:
        raise OSError("disk unreadable")

    monkeypatch.setattr(Pipeline, "_load", broken)
    with pytest.raises(OSError):
        runtime.pipeline.process()
    monkeypatch.undo()
    assert [f.model_dump() for f in failures.listing(runtime.store)] == []
    assert runtime.pipeline.process().failed == 0
    assert profile_of(runtime, "user_id:u2")


@given(
    log=st.lists(st.one_of(st.just("poison"), messages()), min_size=1, max_size=16),
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=4),
)
@hypothesis_settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_with_poison_events_any_split_into_batches_equals_a_rebuild(
    tmp_path_factory: pytest.TempPathFactory, log: list[Any], cuts: list[int]
) -> None:
    """Poison events anywhere, batches cut anywhere, the process restarted after each:
    the same events are set aside and the state is a rebuild's."""
    folder = tmp_path_factory.mktemp("poison-split")
    settings_ = Settings(data_dir=folder, admin_token="t", pipeline_max_attempts=1)
    poison: list[int] = []
    sent = 0
    for cut in [*cuts, len(log)]:
        runtime = Runtime.open(settings_)
        try:
            for index in range(sent, min(sent + cut, len(log))):
                if log[index] == "poison":
                    poison.append(write_poison(runtime, f"m{index}", user_id=f"deep{index}"))
                else:
                    send(runtime, [dict(log[index], messageId=f"m{index}")])
            sent = min(sent + cut, len(log))
            runtime.pipeline.process(max_events=cut)
        finally:
            runtime.close()
    runtime = Runtime.open(settings_)
    try:
        runtime.pipeline.process()
        assert failures.skipped(runtime.store) == set(poison)
        incremental = snapshot(runtime)
        runtime.pipeline.rebuild()
        assert snapshot(runtime) == incremental
    finally:
        runtime.close()


def test_an_event_the_log_query_cannot_read_is_set_aside_too(settings: Settings) -> None:
    """Traits that are not JSON (as a bug in an older writer could have stored them) make
    the batch's read itself fail, not only its processing: found and set aside alike."""
    runtime = Runtime.open(settings.model_copy(update={"pipeline_max_attempts": 1}))
    try:
        send(runtime, [identify("u1", "m1")])
        seq = write_poison(runtime, "m2", user_id="broken")
        runtime.store.execute("UPDATE events SET traits = '{not json' WHERE seq = ?", [seq])
        send(runtime, [identify("u2", "m3")])
        assert runtime.pipeline.process().failed == 1
        [failed] = [f.model_dump() for f in failures.listing(runtime.store)]
        assert failed["seq"] == seq and "JSON" in failed["error"]
        assert profile_of(runtime, "user_id:u1") and profile_of(runtime, "user_id:u2")
    finally:
        runtime.close()
