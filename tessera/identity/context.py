"""What identity's use cases (explain, unmerge) read of a running Tessera: the store, the
settings and something that rebuilds the derived state, as Protocols.

`tessera.context.Context` sits above identity in the layers (it names the pipeline's
profile reads), so identity states the smaller shape it needs here; `tessera.runtime.Runtime`
satisfies it (mypy checks it where the edges pass a Runtime), and identity never imports
the pipeline or the runtime.
"""

from __future__ import annotations

from typing import Protocol

from tessera.results import Result
from tessera.settings import Settings
from tessera.store import Store


class RebuildRun(Protocol):
    """What a rebuild reports (the pipeline's run: events, batches, seconds, ...)."""

    def report(self) -> Result: ...


class Rebuilder(Protocol):
    """Rebuilds identity, profiles and everything derived from the event log."""

    def rebuild(self) -> RebuildRun: ...


class IdentityContext(Protocol):
    """The running parts identity's use cases read: the store, the settings (the default
    phone region for identifiers as typed) and the pipeline, which rebuilds."""

    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def pipeline(self) -> Rebuilder: ...
