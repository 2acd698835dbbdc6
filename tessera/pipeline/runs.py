"""What the pipeline answers: a run, a replay, and a refresh that keeps failing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from tessera.events.failures import Failure
from tessera.results import Result


class RunReport(Result):
    """What a process or rebuild did: events, batches, time and rate, dead letters."""

    events: int
    batches: int
    seconds: float
    events_per_second: int
    failed: int


class ReplayReport(Result):
    """What `replay_failed` did: dead letters let in, processed, those still failing."""

    replayed: int
    processed: int
    still_failing: list[int]
    rebuild: RunReport | None


class Lag(Result):
    """How far behind the log the pipeline is, and the background refresh's failure when
    it keeps failing (else None)."""

    processed_seq: int
    lag_events: int
    #: events acknowledged into the log's files and not yet loaded (counted in lag_events)
    log_backlog_events: int = 0
    lag_seconds: float
    refresh_failure: dict[str, Any] | None


class Stats(Result):
    """`tessera stats` and `GET /api/stats`: the log's totals (events, rejects, sources,
    per source and type, dead letters, dropped identifiers), the pipeline's position and
    lag, and, from a running server, the writer's queue."""

    events: int
    rejected: int
    sources: int
    last_event_at: str | None
    last_seq: int
    pipeline_failed: int
    dropped_identifiers: int
    #: events dropped at ingest because they named a suppressed person (issue 15)
    suppressed_events: int = 0
    #: tracking-plan violations recorded (issue 15)
    plan_violations: int = 0
    by_source: list[dict[str, Any]]
    by_type: dict[str, int]
    processed_seq: int
    lag_events: int
    log_backlog_events: int = 0
    lag_seconds: float
    refresh_failure: dict[str, Any] | None
    writer_queue: int | None = Field(default=None, exclude_if=lambda queued: queued is None)
    log_torn_tails: int | None = Field(default=None, exclude_if=lambda torn: torn is None)


@dataclass(frozen=True)
class PipelineRun:
    events: int
    batches: int
    seconds: float
    #: events of this run that went to the pipeline's dead letters
    failed: int = 0

    def report(self) -> RunReport:
        rate = round(self.events / self.seconds) if self.seconds else 0
        return RunReport(
            events=self.events,
            batches=self.batches,
            seconds=round(self.seconds, 3),
            events_per_second=rate,
            failed=self.failed,
        )


@dataclass(frozen=True)
class ReplayRun:
    """`replay_failed()`: how many dead letters were let in again, those that failed again
    (their seqs), and the rebuild that processed them (None when there was nothing to do)."""

    replayed: int
    still_failing: list[int]
    rebuild: PipelineRun | None

    def report(self) -> ReplayReport:
        return ReplayReport(
            replayed=self.replayed,
            processed=self.replayed - len(self.still_failing),
            still_failing=self.still_failing,
            rebuild=self.rebuild.report() if self.rebuild else None,
        )


@dataclass(frozen=True)
class RefreshFailure:
    """The background refresh of computed traits and segments failed `attempts` times in a
    row: the last error, and when (ISO UTC). Shown by `tessera stats`, `/api/stats` and the
    console (`refresh_failure`) until a refresh succeeds."""

    failure: Failure
    attempts: int
    failed_at: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.failure.to_dict(), "attempts": self.attempts, "failed_at": self.failed_at}
