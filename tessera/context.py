"""What a use case may use of a running Tessera: the store, the settings and a handle on
the pipeline, as Protocols so feature packages never import the pipeline or the runtime.

`tessera.runtime.Runtime` satisfies `Context` (mypy checks it where the edges pass a
Runtime to a use case); a test may pass anything with the same shape.
"""

from __future__ import annotations

from typing import Any, Protocol

from tessera.identity.context import IdentityContext, Rebuilder
from tessera.identity.identifiers import Identifier


class Changes(Protocol):
    """The pipeline's feed of changed profiles (`pipeline/changes.py`)."""

    @property
    def mark(self) -> int: ...

    def since(self, mark: int) -> tuple[int, frozenset[str] | None]:
        """(the current mark, the profiles changed after `mark`, or None: everyone)."""
        ...


class PipelineControl(Rebuilder, Protocol):
    """What a use case may ask of the pipeline: rebuild (identity's use cases), refresh
    after a definition changed, and read a profile from its memory when it is loaded in
    this process."""

    def refresh_computed_traits(self) -> int: ...

    def find_in_memory(self, identifier: Identifier) -> str | None:
        """The live profile from memory; None when memory is not loaded; NotFound when the
        loaded memory lacks the identifier (a miss there is final)."""
        ...

    def read_profile(self, profile_id: str) -> dict[str, Any] | None: ...

    def read_facts(self, profile_id: str) -> dict[str, Any] | None:
        """Traits, consent, computed traits and merged ids from memory; None when memory
        is not loaded in this process."""
        ...

    @property
    def changes(self) -> Changes:
        """The profiles this process's pipeline changed (`pipeline/changes.py`)."""
        ...


class Context(IdentityContext, Protocol):
    """The running parts a use case reads: the store, the settings and the pipeline.
    One family with identity's smaller `IdentityContext`: a Context is one, so a use case
    above identity may hand its context to identity's use cases."""

    @property
    def pipeline(self) -> PipelineControl: ...

    def definitions_changed(self) -> None:
        """Tell the parts that serve from memory in this process (the decision API) that
        what they read changed (offers, exposed traits and segments, publishable keys):
        they reload it before answering again. The use case that changed it calls this,
        so every edge (API, console, CLI) gets the same. Nothing where none runs."""
        ...
