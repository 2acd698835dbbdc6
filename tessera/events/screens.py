"""What the event writer asks before it stores events: screens (suppression, tracking
plans) that may keep, refuse and record. Imports pyarrow only: a collector process, which
has no store, imports the suppression screen too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Screened:
    """What a screen made of a load's events: those kept, those refused (rows in
    LOG_REJECTED_SCHEMA's order, with the reason) and violations to record as rows of
    `plan_violations`."""

    kept: pa.Table
    rejected: pa.Table | None
    violations: list[tuple[object, ...]]


class Screen(Protocol):
    """Checks loaded events before they are stored (tracking plans, tessera/plans);
    None when it has nothing to say about them, which must be the cheap common case."""

    def screen(self, events: pa.Table) -> Screened | None: ...


class Screens:
    """Several screens in turn (suppression, then tracking plans): each sees what the one
    before kept; what they refuse and record adds up."""

    def __init__(self, *screens: Screen) -> None:
        self.screens = screens

    def screen(self, events: pa.Table) -> Screened | None:
        kept, refused, violations, changed = events, [], [], False
        for screen in self.screens:
            if not kept.num_rows:
                break
            screened = screen.screen(kept)
            if screened is None:
                continue
            changed = True
            kept = screened.kept
            violations.extend(screened.violations)
            if screened.rejected is not None and screened.rejected.num_rows:
                refused.append(screened.rejected)
        if not changed:
            return None
        return Screened(kept, pa.concat_tables(refused) if refused else None, violations)
