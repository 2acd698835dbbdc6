"""Forwarding an erasure to the destinations: each kind that can forget a person is asked
to (a webhook gets a signed DELETE); the others are named, so the receipt says where the
request must still be made by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tessera.activation import destinations
from tessera.activation.connectors import Deletes, HttpConnector, Outcome
from tessera.activation.engine import connector_for
from tessera.store import Store

#: kinds whose connector implements `delete`
DELETING_KINDS = ("webhook",)
#: the files kind keeps its files where Tessera can clean them (governance/files.py)
LOCAL_KINDS = ("files",)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """One destination's answer to the deletion (None when its kind cannot be asked)."""

    name: str
    kind: str
    outcome: Outcome | None
    folder: Path | None = None
    #: a files destination's remote target (s3://...): its finished files are not ours to clean
    remote: str | None = None


def forward_deletion(
    store: Store,
    data_dir: Path,
    request: dict[str, Any],
    transport_for: Callable[[destinations.Configured], httpx.BaseTransport | None] | None = None,
) -> list[Forwarded]:
    """Ask every destination (enabled or not: it may hold the person still) to forget."""
    answers = []
    for destination in destinations.configurations(store):
        if destination.kind in LOCAL_KINDS:
            connector = connector_for(destination, None, data_dir / "destinations")
            folder = getattr(connector, "folder", None)
            remote = (
                getattr(connector, "target", None) if getattr(connector, "remote", False) else None
            )
            connector.close()
            answers.append(Forwarded(destination.name, destination.kind, None, folder, remote))
            continue
        if destination.kind not in DELETING_KINDS:
            answers.append(Forwarded(destination.name, destination.kind, None))
            continue
        transport = transport_for(destination) if transport_for else None
        secret = destinations.secret_of(store, destination.id)
        connector = connector_for(destination, secret, data_dir / "destinations", transport)
        try:
            deleting: Deletes | None = connector if isinstance(connector, HttpConnector) else None
            outcome = deleting.delete(request) if deleting is not None else None
        finally:
            connector.close()
        answers.append(Forwarded(destination.name, destination.kind, outcome))
    return answers
