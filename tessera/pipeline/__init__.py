"""The pipeline: tails the event log by seq and drives identity, then profiles, then segments.

Each batch is one transaction: the derived rows it produces and the new position in the
log commit together. So a crash between batches loses nothing, and a batch is never
applied twice. State after processing the log in any split into batches equals the state
after `rebuild()` (tests/integration/test_pipeline_invariants.py).

A batch that fails is tried again, then taken apart until the event that fails on its own
is found: that event goes to the pipeline's dead letters (`events/failures.py`) with its
error, and the pipeline moves past it. One bad event never stalls identity, profiles and
segments for everyone; the pipeline and a rebuild both skip it until `replay_failed()`.

Modules: `driver` (the Pipeline: process, rebuild, replay, memory), `loop` (the background
scheduling), `isolation` (retries and bisection of failing batches), `persist` (one batch's
rows as Arrow tables, in one transaction), `runs` (the values it answers).
"""

from __future__ import annotations

from tessera.pipeline.driver import DERIVED_TABLES, Pipeline
from tessera.pipeline.runs import PipelineRun, RefreshFailure, ReplayRun

__all__ = ["DERIVED_TABLES", "Pipeline", "PipelineRun", "RefreshFailure", "ReplayRun"]
