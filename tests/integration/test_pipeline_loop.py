"""The background loop (issue 11): a refresh of computed traits that keeps failing is tried
a bounded number of times, recorded where stats show it, and batches go on meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tessera.identity.identifiers import Identifier
from tessera.pipeline import loop
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import send


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll the background thread's visible state (it has no caught-up signal here)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the background loop never got there"
        time.sleep(0.02)


@pytest.fixture
def broken_traits_file(tmp_path: Path) -> Path:
    """A computed traits file someone broke while the server runs: every refresh fails."""
    path = tmp_path / "traits.yml"
    path.write_text("computed_traits: [unclosed\n")
    return path


@pytest.fixture
def running(tmp_path: Path, broken_traits_file: Path) -> Iterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token="t",
        computed_traits_file=broken_traits_file,
        pipeline_max_attempts=2,
        pipeline_interval_seconds=0.01,
    )
    runtime = Runtime.open(settings)
    runtime.pipeline.start()
    yield runtime
    runtime.close()


def caught_up(runtime: Runtime) -> bool:
    return bool(runtime.pipeline.lag().lag_events == 0)


def test_a_refresh_that_keeps_failing_is_recorded_after_the_tries_and_batches_go_on(
    running: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = running.pipeline
    send(running, [{"type": "identify", "userId": "u1", "messageId": "m1"}])
    wait_for(lambda: pipeline.refresh_failure is not None)
    failure = pipeline.lag().refresh_failure
    assert failure is not None
    assert failure["attempts"] == 2 and failure["error_type"] == "UnreadableFile"
    assert "traits.yml" in failure["error"]
    memory = pipeline.unifier
    # Batches go on, and the refresh is not tried again before the sweep's pace (it was
    # tried every ~1.5 s for ever, reloading memory from the store each time).
    send(running, [{"type": "identify", "userId": "u2", "messageId": "m2"}])
    wait_for(lambda: caught_up(running))
    assert pipeline.find_in_memory(Identifier("user_id", "u2"))
    assert pipeline.unifier is memory
    refresh_failure = pipeline.lag().refresh_failure
    assert refresh_failure is not None and refresh_failure["attempts"] == 2
    recorded = [r for r in caplog.records if "refresh failed 2 times" in r.getMessage()]
    assert len(recorded) == 1
    assert "unclosed" not in caplog.text  # type and place in the log, never the message


def test_a_refresh_that_works_again_clears_the_failure(
    tmp_path: Path, broken_traits_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "WINDOW_REFRESH_SECONDS", 0.05)  # the sweep's pace, for a test
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token="t",
        computed_traits_file=broken_traits_file,
        pipeline_max_attempts=1,
        pipeline_interval_seconds=0.01,
    )
    runtime = Runtime.open(settings)
    try:
        runtime.pipeline.start()
        send(runtime, [{"type": "identify", "userId": "u1", "messageId": "m1"}])
        wait_for(lambda: runtime.pipeline.refresh_failure is not None)
        broken_traits_file.write_text("computed_traits: []\n")  # the fix
        wait_for(lambda: runtime.pipeline.refresh_failure is None)
        assert runtime.pipeline.lag().refresh_failure is None
    finally:
        runtime.close()
