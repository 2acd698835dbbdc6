"""Erasure: forget a person everywhere Tessera keeps them, and prove it.

The steps, each leaving a receipt (docs/privacy.md has the list of stores):

1. suppress: every identifier of the person, as salted hashes, published to every
   collect path at once (suppression.py), so nothing new of them arrives meanwhile;
2. the event log in files: every writer's loaded frames scrubbed in place
   (eventlog/scrub.py), the loader held still; then, in the same hold, the `events` rows
   and every table that names them (`TABLES`, and any other table with a `profile_id`
   column: features added later are covered);
3. the derived state (identities, profiles, traits...): rebuilt from the log without them;
4. the files: reject files, uploads, destination spools and finished files, demo data
   (files.py), and the folders of `files` destinations;
5. the destinations: a deletion forwarded to each kind that takes one (a webhook's
   signed DELETE), the others named in their receipt;
6. the database file: rewritten (`Store.rewrite`), since DuckDB keeps deleted rows' bytes;
7. the proof: every file of the data directory scanned for the person's identifiers;
8. the backups: which known backups still hold them, each left the suppression list so
   that restoring it erases them again (backups.py).

A step that fails is recorded with its reason and the others still run; the request is
then `partly_failed`, and filing it again retries every step (all are idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import httpx

from tessera.activation import destinations
from tessera.activation.forgetting import forward_deletion
from tessera.context import Context
from tessera.errors import TesseraError
from tessera.eventlog import Position
from tessera.eventlog.scrub import scrub_log
from tessera.events.timestamps import utc_now
from tessera.governance import backups, files, requests, suppressed
from tessera.governance.requests import PrivacyRequest, Receipt, audit_request, receipt
from tessera.governance.subject import IDENTIFIER_COLUMNS, Subject, find
from tessera.governance.suppression import key
from tessera.identity.lookup import identifier_from_text
from tessera.store import Store

log = logging.getLogger(__name__)

#: how long the collect paths take to see a new suppression list (they look every 0.2 s)
SETTLE_SECONDS = 0.5
#: tables derived from the log: emptied and refilled by the rebuild (step 3)
DERIVED = (
    "identities",
    "profiles",
    "profile_summaries",
    "event_profiles",
    "identity_ledger",
    "computed_traits",
    "trait_aggregates",
)
#: files of the data directory that hold no person (keys, hashes, the server's address)
_NOT_PERSONAL = ("admin-token", "source-keys.json", "suppressed.json", "server.json")

_RUNNING = threading.Lock()


class LogHold(Protocol):
    """The loader, held still with everything loaded (events/loader.py `held`)."""

    def held(self) -> AbstractContextManager[dict[str, Position]]: ...


class ErasureContext(Context, Protocol):
    """A Context with the log's loader (`tessera.runtime.Runtime` is one)."""

    @property
    def loader(self) -> LogHold: ...


TransportFor = Callable[[destinations.Configured], httpx.BaseTransport | None]


def erase(
    context: ErasureContext, text: str, *, transport_for: TransportFor | None = None
) -> PrivacyRequest:
    """Erase the person `text` (`TYPE:VALUE`) names; the request with its receipts.

    Raises:
        InvalidField: `text` is not an identifier.
    """
    settings, store = context.settings, context.store
    identifier = identifier_from_text(text, settings.default_region)
    with _RUNNING:  # one erasure at a time: each holds the loader and rewrites the file
        salt = suppressed.salt(store)
        request_id, attempt = requests.begin(store, salt, "erase", identifier, utc_now())
        subject = find(store, identifier, settings.default_region)
        receipts: list[Receipt] = []
        folders: list[Path] = []

        def step(system: str, kind: str, action: Callable[[], Sequence[Receipt]]) -> None:
            try:
                receipts.extend(action())
            except Exception as e:  # recorded, and the next step runs
                receipts.append(
                    receipt(system, kind, 0, utc_now(), status="failed", detail=_reason(e))
                )

        step(
            "suppression list",
            "suppression",
            lambda: [_suppress(store, settings.suppression_path, salt, subject, request_id)],
        )
        step("event log", "log", lambda: _log_and_tables(context, subject))
        step("derived tables", "table", lambda: [_rebuild(context, subject)])
        step(
            "destinations",
            "destination",
            lambda: _destinations(
                store, settings.data_dir, subject, request_id, folders, transport_for
            ),
        )
        step("files", "files", lambda: _files(settings.data_dir, subject, folders))
        step("database file", "storage", lambda: [_compact(store)])
        step(
            "proof",
            "proof",
            lambda: [_prove(settings.data_dir, subject, folders), _prove_tables(store, subject)],
        )
        step(
            "backups",
            "backups",
            lambda: [backups.examine(store, subject, settings.suppression_path)],
        )
        requests.finish(store, request_id, attempt, receipts, utc_now())
        result = requests.get(store, request_id)
    audit_request(context, result)
    return result


# -- the steps ------------------------------------------------------------------------


def _suppress(store: Store, path: Path, salt: str, subject: Subject, request_id: str) -> Receipt:
    entries = {(key(salt, value), _type_of(subject, value)) for value in subject.values}
    added = suppressed.add(store, sorted(entries), request_id, utc_now())
    suppressed.publish(store, path)
    time.sleep(SETTLE_SECONDS)  # every collect path has read the list before the log is held
    return receipt(
        "suppression list",
        "suppression",
        added,
        utc_now(),
        detail=f"{len(entries)} identifier values kept as salted hashes; new "
        "events naming them are dropped at ingest",
    )


def _type_of(subject: Subject, value: str) -> str:
    for identifier in subject.identifiers:
        if identifier.value == value:
            return identifier.type
    return "raw"


def _log_and_tables(context: ErasureContext, subject: Subject) -> list[Receipt]:
    store, settings = context.store, context.settings
    with context.loader.held() as positions:
        scrubbed = scrub_log(settings.log_dir, positions, subject.needles)
        receipts = [
            receipt(
                "event log files",
                "log",
                scrubbed.rows,
                utc_now(),
                detail=f"{scrubbed.frames} records scrubbed in place in "
                f"{scrubbed.segments} segment files",
            )
        ]
        receipts.extend(_delete_rows(store, subject))
    return receipts


def _delete_rows(store: Store, subject: Subject) -> list[Receipt]:
    """Delete the person's rows from every table that keeps them (not the derived ones)."""
    lowered = sorted({v.strip().lower() for v in subject.values})
    needles = subject.needles
    profiles = subject.profile_ids
    seqs = subject.seqs
    by_column = " OR ".join(
        f"lower(trim({c})) IN (SELECT unnest($values))" for c in IDENTIFIER_COLUMNS
    )
    naming = "EXISTS (SELECT 1 FROM (SELECT unnest($needles) AS n) WHERE contains(lower({}), n))"
    tables: list[tuple[str, str]] = [
        ("events", f"seq IN (SELECT unnest($seqs)) OR {by_column} OR " + naming.format("payload")),
        ("rejected", naming.format("coalesce(payload, '')")),
        ("pipeline_failures", "seq IN (SELECT unnest($seqs))"),
        (
            "third_party_memberships",
            "lower(trim(identifier_value)) IN (SELECT unnest($values)) "
            "OR lower(identifier_value) IN (SELECT unnest($needles))",
        ),
        (
            "campaign_conversions",
            "lower(trim(identifier_value)) IN (SELECT unnest($values)) "
            "OR lower(identifier_value) IN (SELECT unnest($needles))",
        ),
        ("lookalike_members", "profile_id IN (SELECT unnest($profiles))"),
        ("segment_members", "profile_id IN (SELECT unnest($profiles))"),
        ("destination_audience_members", "profile_id IN (SELECT unnest($profiles))"),
        (
            "destination_dead_letters",
            naming.format("message") + " OR EXISTS (SELECT 1 FROM (SELECT unnest($profiles) AS p) "
            "WHERE contains(message, p))",
        ),
        ("destination_errors", naming.format("coalesce(body, '')")),
        ("identity_blocks", naming.format("first || ' ' || second")),
        ("plan_violations", naming.format("reason || ' ' || coalesce(message_id, '')")),
    ]
    handled = {name for name, _ in tables} | set(DERIVED)
    for table in _tables_with_profile_id(store):
        if table not in handled:  # a feature added later (offers, decisions...)
            tables.append((table, "profile_id IN (SELECT unnest($profiles))"))
    parameters = {"values": lowered, "needles": needles, "profiles": profiles, "seqs": seqs}
    receipts = []
    with store.transaction():
        for table, condition in tables:
            used = {name: value for name, value in parameters.items() if f"${name}" in condition}
            # `table` and `condition` are ours (this module); every value is a parameter.
            row = store.fetch_one(f"SELECT count(*) FROM {table} WHERE {condition}", used)
            count = int(row[0]) if row else 0
            if count:
                store.execute(f"DELETE FROM {table} WHERE {condition}", used)
            receipts.append(receipt(f"table {table}", "table", count, utc_now()))
    return receipts


def _tables_with_profile_id(store: Store) -> list[str]:
    return [
        r[0]
        for r in store.fetch_all(
            "SELECT DISTINCT table_name FROM information_schema.columns "
            "WHERE column_name = 'profile_id' AND table_schema = 'main' ORDER BY 1"
        )
    ]


def _rebuild(context: Context, subject: Subject) -> Receipt:
    store = context.store
    before = 0
    if subject.profile_ids:
        for table in DERIVED:
            row = store.fetch_one(
                f"SELECT count(*) FROM {table} WHERE profile_id IN (SELECT unnest(?))",
                [subject.profile_ids],
            )
            before += int(row[0]) if row else 0
    context.pipeline.rebuild()
    left = store.fetch_one(
        "SELECT count(*) FROM identities WHERE value IN (SELECT unnest(?))",
        [[i.value for i in subject.identifiers]],
    )
    remaining = int(left[0]) if left else 0
    if remaining:
        return receipt(
            "derived tables",
            "table",
            before,
            utc_now(),
            status="failed",
            detail=f"{remaining} identifiers still derived after the rebuild",
        )
    return receipt(
        "derived tables",
        "table",
        before,
        utc_now(),
        detail=f"{', '.join(DERIVED)}: rebuilt from the log without them",
    )


def _destinations(
    store: Store,
    data_dir: Path,
    subject: Subject,
    request_id: str,
    folders: list[Path],
    transport_for: TransportFor | None,
) -> list[Receipt]:
    request = {
        "type": "delete",
        "requestId": request_id,
        "identifiers": [{"type": i.type, "value": i.value} for i in subject.identifiers],
    }
    user_ids = [i.value for i in subject.identifiers if i.type == "user_id"]
    if user_ids:
        request["userId"] = user_ids[0]
    receipts = []
    for answer in forward_deletion(store, data_dir, request, transport_for):
        system = f"destination {answer.name}"
        if answer.remote is not None and answer.folder is not None:
            folders.append(answer.folder)  # the local spool is cleaned with the files
            receipts.append(
                receipt(
                    system,
                    "destination",
                    0,
                    utc_now(),
                    status="unsupported",
                    detail=f"its finished files at {answer.remote} are outside Tessera: "
                    "delete the person's rows there",
                )
            )
        elif answer.folder is not None:
            folders.append(answer.folder)
            receipts.append(
                receipt(
                    system,
                    "destination",
                    0,
                    utc_now(),
                    detail="its files are cleaned with the files (step 4)",
                )
            )
        elif answer.outcome is None:
            receipts.append(
                receipt(
                    system,
                    "destination",
                    0,
                    utc_now(),
                    status="unsupported",
                    detail=f"a {answer.kind} destination takes no deletion "
                    "from Tessera: make the request in its own tool",
                )
            )
        elif answer.outcome.status is not None and 200 <= answer.outcome.status < 300:
            receipts.append(
                receipt(
                    system,
                    "destination",
                    1,
                    utc_now(),
                    detail=f"deletion accepted ({answer.outcome.status})",
                )
            )
        else:
            status = answer.outcome.status
            receipts.append(
                receipt(
                    system,
                    "destination",
                    0,
                    utc_now(),
                    status="failed",
                    detail=f"the deletion was refused or not answered "
                    f"({status if status is not None else 'no answer'}); "
                    "retry the request",
                )
            )
    return receipts


def _files(data_dir: Path, subject: Subject, folders: list[Path]) -> list[Receipt]:
    needles = [n.encode() for n in subject.needles]
    groups: dict[str, list[Path]] = {}
    for path in files.files_under(data_dir, skip=_not_file_sets(data_dir)):
        relative = path.relative_to(data_dir)
        group = relative.parts[0] + "/" if len(relative.parts) > 1 else "data directory"
        groups.setdefault(group, []).append(path)
    for folder in folders:
        if data_dir.resolve() not in folder.resolve().parents:
            groups.setdefault(str(folder) + "/", []).extend(files.files_under(folder))
    receipts = []
    for group, paths in sorted(groups.items()):
        cleaned = files.clean(paths, needles)
        if cleaned.refused:
            receipts.append(
                receipt(
                    f"files {group}",
                    "files",
                    cleaned.removed,
                    utc_now(),
                    status="failed",
                    detail=f"cannot rewrite {', '.join(cleaned.refused)} "
                    "(unknown format): delete or edit it by hand",
                )
            )
        else:
            receipts.append(
                receipt(
                    f"files {group}",
                    "files",
                    cleaned.removed,
                    utc_now(),
                    detail=f"{cleaned.rewritten} of {len(paths)} files "
                    "rewritten without their lines or rows",
                )
            )
    return receipts


def _not_file_sets(data_dir: Path) -> list[Path]:
    """What the other steps own (the database, the log) or what names nobody."""
    return [
        data_dir / "tessera.duckdb",
        data_dir / "tessera.duckdb.wal",
        data_dir / "log",
        *(data_dir / name for name in _NOT_PERSONAL),
    ]


def _compact(store: Store) -> Receipt:
    rewritten = store.rewrite()
    return receipt(
        "database file",
        "storage",
        0,
        utc_now(),
        detail=f"rewritten without deleted rows: {rewritten.bytes_before:,} → "
        f"{rewritten.bytes_after:,} bytes",
    )


def _prove(data_dir: Path, subject: Subject, folders: list[Path]) -> Receipt:
    needles = [n.encode() for n in subject.needles]
    scanned = 0
    holding: list[str] = []
    roots = [data_dir, *(f for f in folders if data_dir.resolve() not in f.resolve().parents)]
    for root in roots:
        for path in files.files_under(root):
            scanned += 1
            if files.holds(path, needles):
                holding.append(str(path.relative_to(root)) if root == data_dir else str(path))
    if holding:
        return receipt(
            "proof",
            "proof",
            0,
            utc_now(),
            status="failed",
            detail=f"{len(holding)} of {scanned} files still hold an identifier: "
            f"{', '.join(sorted(holding)[:10])}; retry the request",
        )
    return receipt(
        "proof",
        "proof",
        0,
        utc_now(),
        detail=f"{scanned} files scanned byte by byte: none holds any of the "
        f"{len(needles)} identifier values (or their SHA-256)",
    )


def _prove_tables(store: Store, subject: Subject) -> Receipt:
    """Every text column of every table searched for the needles through SQL. The byte scan
    reads DuckDB's file as stored, and DuckDB compresses strings (dictionary, FSST): a
    value it holds compressed is not found by bytes, so the tables are searched too."""
    naming: list[str] = []
    columns = store.fetch_all(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND data_type = 'VARCHAR' ORDER BY 1, 2"
    )
    for table, column in columns:
        # Names from the catalogue, quoted as identifiers; the needles are parameters.
        quoted = '"' + table.replace('"', '""') + '"."' + column.replace('"', '""') + '"'
        row = store.fetch_one(
            f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}" WHERE EXISTS '
            f"(SELECT 1 FROM (SELECT unnest(?) AS n) WHERE contains(lower({quoted}), n))",
            [subject.needles],
        )
        if row is not None and row[0]:
            naming.append(f"{table}.{column}")
    if naming:
        return receipt(
            "proof: tables",
            "proof",
            0,
            utc_now(),
            status="failed",
            detail=f"{len(naming)} columns still name them: {', '.join(naming[:10])}; "
            "retry the request",
        )
    return receipt(
        "proof: tables",
        "proof",
        0,
        utc_now(),
        detail=f"{len(columns)} text columns searched: none holds any of the "
        f"{len(subject.needles)} identifier values",
    )


def _reason(error: Exception) -> str:
    """Why a step failed, without the person's values: our errors' codes, else the type."""
    if isinstance(error, TesseraError):
        return f"{error.code}: the step failed; retry the request"
    log.error("an erasure step failed (%s)", type(error).__name__)
    return f"{type(error).__name__}: the step failed; retry the request"
