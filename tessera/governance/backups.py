"""Erasure and backups: which backups still hold an erased person, and erasing them again
when one is restored.

A backup is a copy taken at one moment; an erasure afterwards does not reach into it
(rewriting every old backup's database would cost as much as taking it again, and a
backup on another machine is out of reach anyway). What a careful operator needs instead:

- **to know**: every backup is registered as it is taken (`register`, table `backups`,
  with its folder when Tessera knows it). An erasure's receipt `backups` lists the
  registered folders that still hold the person, and says how many backups were
  streamed elsewhere (GET /api/backup), outside Tessera's reach.
- **that a restore does not bring the person back**: the erasure leaves the suppression
  list (salted hashes only, `suppressed.json`) in each known backup folder as
  `erasures.json`; `tessera restore` reads it (and the replaced data directory's own
  list, and any `--suppressed FILE` given), `matches` finds in the restored directory
  every person whose identifier hashes to an entry, and the restore erases them again
  before anything serves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tessera.events import source_keys
from tessera.events.timestamps import utc_now
from tessera.governance import files, suppressed
from tessera.governance.requests import Receipt, receipt
from tessera.governance.subject import Subject
from tessera.governance.suppression import key
from tessera.store import Store

#: the erasures recorded after a backup, left in its folder (salted hashes only)
ERASURES = "erasures.json"
MANIFEST = "backup.json"


def register(store: Store, taken_at: datetime, folder: Path | None, last_seq: int) -> None:
    """Remember a backup just taken (`folder` None: streamed, destination unknown)."""
    where = str(folder.expanduser().resolve()) if folder is not None else None
    store.execute("INSERT INTO backups VALUES (?, ?, ?)", [taken_at, where, last_seq])


def known(store: Store) -> list[tuple[datetime, str | None, int]]:
    return [
        (row[0], row[1], int(row[2]))
        for row in store.fetch_all("SELECT taken_at, folder, last_seq FROM backups ORDER BY 1")
    ]


def examine(store: Store, subject: Subject, suppression_path: Path) -> Receipt:
    """The erasure's `backups` receipt: which known backups still hold the person (their
    bytes name them, or they were taken after the person's first event: DuckDB may hold
    the values compressed), each given the current suppression list as `erasures.json`.

    The receipt is `done` when no known backup holds them, `unsupported` (settled, but
    said) when some do or when backups were streamed out of reach."""
    needles = [n.encode() for n in subject.needles]
    first_seq = min(subject.seqs) if subject.seqs else None
    document = _read(suppression_path)
    holding: list[str] = []
    gone: list[str] = []
    streamed = 0
    for _taken_at, folder, last_seq in known(store):
        if folder is None:
            streamed += 1
            continue
        root = Path(folder)
        if not (root / MANIFEST).is_file():
            gone.append(folder)  # deleted or moved since: nothing of it left to reach
            continue
        held = first_seq is not None and first_seq <= last_seq
        held = held or any(
            files.holds(path, needles) for path in files.files_under(root)
            if path.name != ERASURES
        )  # fmt: skip
        if document is not None:
            source_keys.write_document(root / ERASURES, _merged(_read(root / ERASURES), document))
        if held:
            holding.append(folder)
    parts = []
    if holding:
        parts.append(
            f"{len(holding)} backup(s) still hold this person: {', '.join(holding[:10])}; each "
            f"now carries {ERASURES}, so `tessera restore` erases them again"
        )
    else:
        parts.append(f"no known backup folder holds this person ({len(gone)} no longer exist)")
    if streamed:
        parts.append(
            f"{streamed} backup(s) were streamed to a client (GET /api/backup) without a known "
            "folder: they are outside Tessera's reach; restore one with `tessera restore "
            "--suppressed DATA_DIR/suppressed.json` to erase them again"
        )
    status = "unsupported" if holding or streamed else "done"
    return receipt("backups", "backups", 0, utc_now(), status=status, detail="; ".join(parts))


def documents(folder: Path, replaced: Path | None, extra: Iterable[Path]) -> list[dict[str, Any]]:
    """The suppression lists a restore re-applies: the backup's `erasures.json`, the
    replaced data directory's own list (read before it is removed), and any given."""
    found = [_read(folder / ERASURES)]
    if replaced is not None:
        found.append(_read(replaced))
    found.extend(_read(path) for path in extra)
    return [d for d in found if d is not None]


def matches(store: Store, lists: list[dict[str, Any]]) -> tuple[list[str], int]:
    """The identifiers (`TYPE:VALUE`, one per profile) of the restored store that a list
    names, and how many hashes were added to its own suppression list. A list under
    another salt (another deployment's) cannot be matched and is skipped."""
    salt = suppressed.existing_salt(store)
    hashes: set[str] = set()
    for document in lists:
        if salt is None:
            salt = suppressed.adopt_salt(store, str(document["salt"]))
        if document.get("salt") == salt:
            hashes |= {str(h) for h in document.get("hashes", [])}
    if salt is None or not hashes:
        return [], 0
    added = suppressed.add(store, ((h, "restored") for h in sorted(hashes)), None, utc_now())
    chosen: dict[str, str] = {}
    rows = store.fetch_all(
        "SELECT coalesce(p.merged_into, i.profile_id), i.type, i.value FROM identities i "
        "LEFT JOIN profiles p ON p.profile_id = i.profile_id ORDER BY 1, 2, 3"
    )
    for profile_id, kind, value in rows:
        if key(salt, str(value)) in hashes:
            chosen.setdefault(str(profile_id), f"{kind}:{value}")
    return sorted(chosen.values()), added


def _merged(before: dict[str, Any] | None, now: dict[str, Any]) -> dict[str, Any]:
    """The note already in a folder and the current list, so that a list with fewer
    entries (a restored directory erasing again) never shortens it."""
    if before is None or before.get("salt") != now.get("salt"):
        return now
    hashes = sorted({*before.get("hashes", []), *now.get("hashes", [])})
    return {**now, "hashes": hashes}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("salt"), str):
        return None
    return document
