"""Liveness and readiness, as orchestrators (Kubernetes, systemd, a load balancer) ask.

`/healthz` says the process answers; `/readyz` says it can do its job: the store opens
a read, the pipeline is within its freshness budget (TESSERA_READY_LAG_SECONDS), and
every collector process `tessera serve` started is alive.
"""

from __future__ import annotations

from tessera import __version__
from tessera.results import Result
from tessera.runtime import Runtime


class Alive(Result):
    status: str
    version: str


class Check(Result):
    """One readiness check: its name, whether it passes, and what was seen."""

    name: str
    ok: bool
    detail: str


class Readiness(Result):
    ready: bool
    checks: list[Check]


def alive() -> Alive:
    return Alive(status="ok", version=__version__)


def readiness(runtime: Runtime) -> Readiness:
    """Every check, each one whatever the others said (an operator sees all that fails)."""
    checks = [_store(runtime), _pipeline(runtime), _collectors(runtime)]
    return Readiness(ready=all(check.ok for check in checks), checks=checks)


def _store(runtime: Runtime) -> Check:
    if runtime.closed:
        return Check(name="store", ok=False, detail="closed")
    try:
        runtime.store.fetch_one("SELECT 1")
    except Exception as error:
        return Check(name="store", ok=False, detail=type(error).__name__)
    return Check(name="store", ok=True, detail="open")


def _pipeline(runtime: Runtime) -> Check:
    budget = runtime.settings.ready_lag_seconds
    try:
        lag = runtime.pipeline.lag()
    except Exception as error:
        return Check(name="pipeline", ok=False, detail=type(error).__name__)
    detail = f"{lag.lag_events} events, {lag.lag_seconds:.1f} s behind (budget {budget:g} s)"
    return Check(name="pipeline", ok=lag.lag_seconds <= budget, detail=detail)


def _collectors(runtime: Runtime) -> Check:
    alive = runtime.collector_processes()
    up = sum(alive)
    if not alive:
        return Check(name="collectors", ok=True, detail="none: this process collects")
    return Check(name="collectors", ok=up == len(alive), detail=f"{up} of {len(alive)} up")
