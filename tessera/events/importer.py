"""File imports for the offline channels: CSV, JSON lines and Parquet through a mapping.

Each row becomes an identify or track message and goes through the same contract
and writer as the HTTP API. Rows that fail go to a reject file (line number,
reason, the row) and never stop the import.
"""

from __future__ import annotations

import csv
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import yaml
from pydantic import Field

from tessera import spreadsheet
from tessera.errors import (
    InvalidCursor,
    InvalidField,
    InvalidImportFile,
    InvalidMapping,
    InvalidMessage,
    NotFound,
    TesseraError,
)
from tessera.events import nesting
from tessera.events import rejects as reject_files
from tessera.events.body import parse_json
from tessera.events.contract import Envelope, EventRow, check_message
from tessera.events.mapping import Mapping, check_columns, content_fingerprint, parse_mapping
from tessera.events.mapping import row_to_message as build_message
from tessera.events.sources import Source
from tessera.events.timestamps import iso_utc, now_micros, utc_now
from tessera.events.writer import EventWriter
from tessera.paging import Page, check_limit, decode_cursor, encode_cursor
from tessera.results import Result
from tessera.store import Store

CHUNK_ROWS = 5_000
#: The largest message one row may become (the collect API's is a setting).
MAX_MESSAGE_BYTES = 1 << 20
#: The delimiters a CSV file may use without saying so in its mapping, first preferred.
_DELIMITERS = (",", ";", "\t", "|")
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

Progress = Callable[[int, int | None], None]
RUNNING, DONE, FAILED, INTERRUPTED = "running", "done", "failed", "interrupted"


class Imported(Result):
    """What an import did: rows read, accepted, already there, refused (with the file
    that lists them), and its status; `seconds` when this process ran it."""

    import_id: str
    file: str
    source: str
    rows: int
    accepted: int
    duplicates: int
    rejected: int
    reject_file: str | None
    seconds: float | None = Field(default=None, exclude_if=lambda seconds: seconds is None)
    status: str


class ImportStarted(Result):
    """An import started on a thread (`wait` false): follow it in `GET /api/imports`."""

    import_id: str
    status: str


@dataclass
class ImportSummary:
    import_id: str
    file: str
    source: str
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reject_file: str | None = None
    seconds: float = 0.0
    status: str = RUNNING

    def result(self) -> Imported:
        return Imported(**asdict(self))


def load_mapping(text: str) -> Mapping:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidMapping(f"the mapping is not valid YAML: {e}") from None
    except RecursionError:
        raise InvalidMapping(
            "the mapping nests too deep to read; a mapping is a few levels deep"
        ) from None
    return parse_mapping(document)


def detect_format(path: Path, mapping: Mapping) -> str:
    if mapping.file_format:
        return mapping.file_format
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InvalidImportFile(
            f"cannot tell the format of {path.name!r} from its extension; name it .csv, "
            ".jsonl or .parquet, or set `format:` in the mapping"
        )
    return found


def import_file(
    *,
    store: Store,
    writer: EventWriter,
    source: Source,
    path: Path,
    mapping: Mapping,
    rejects_dir: Path,
    file_name: str | None = None,
    progress: Progress | None = None,
    import_id: str | None = None,
) -> ImportSummary:
    """Import one file into `source`; returns the counts. Resumable by re-running."""
    started = time.perf_counter()
    name = file_name or path.name
    summary = ImportSummary(import_id or "imp_" + secrets.token_hex(6), name, source.name)
    file_format = detect_format(path, mapping)
    rows = _read(path, file_format, mapping, name)
    columns = next(rows)  # the reader yields its header first
    if columns is not None:
        check_columns(mapping, columns)
    total = _estimate_rows(path, file_format)
    record_start(store, summary.import_id, source, summary.file)
    try:
        _import_rows(store, writer, source, rows, mapping, rejects_dir, summary, total, progress)
    except KeyboardInterrupt:
        mark_ended(store, summary.import_id, INTERRUPTED, "stopped by the user (Ctrl-C)")
        raise
    except Exception as e:
        mark_ended(store, summary.import_id, FAILED, _reason(e))
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.status = DONE
    _record_progress(store, summary, finished=True)
    return summary


def _import_rows(
    store: Store,
    writer: EventWriter,
    source: Source,
    rows: Iterator[Any],
    mapping: Mapping,
    rejects_dir: Path,
    summary: ImportSummary,
    total: int | None,
    progress: Progress | None,
) -> None:
    name = summary.file
    rejects_dir.mkdir(parents=True, exist_ok=True)
    reject_path = rejects_dir / f"{summary.import_id}-{Path(name).stem}.rejects.csv"
    occurrences: dict[str, int] = {}
    batch: list[EventRow] = []
    with reject_path.open("w", newline="", encoding="utf-8") as reject_handle:
        rejects = spreadsheet.writer(reject_handle)
        rejects.writerow(reject_files.HEADER)

        # One receive time per chunk of rows, as an HTTP batch has one per request.
        envelope = Envelope(source.id, source.channel, now_micros(), require_segment_ids=False)

        def flush() -> None:
            nonlocal envelope
            envelope = Envelope(source.id, source.channel, now_micros(), require_segment_ids=False)
            if batch:
                result = writer.write(batch)
                summary.accepted += result.accepted
                summary.duplicates += result.duplicates
                batch.clear()
            _record_progress(store, summary)
            if progress is not None:
                progress(summary.rows, total)

        try:
            for line, row in rows:  # type: ignore[misc]
                summary.rows += 1
                rejection = _take_row(mapping, row, envelope, occurrences, batch)
                if rejection is not None:
                    summary.rejected += 1
                    rejects.writerow([line, rejection, _show_row(row)])
                if len(batch) >= CHUNK_ROWS:
                    flush()
        finally:
            # Also when reading stops half-way: what was read is kept, and the reject
            # file says which rows were refused.
            flush()
            if summary.rejected:
                summary.reject_file = str(reject_path)
    if not summary.rejected:
        reject_path.unlink()


def _take_row(
    mapping: Mapping,
    row: Any,
    envelope: Envelope,
    occurrences: dict[str, int],
    batch: list[EventRow],
) -> str | None:
    """Add one row's event to `batch`, or say why the row is refused."""
    try:
        if isinstance(row, TesseraError):
            raise row
        occurrence = 0
        if mapping.message_id is None:
            fingerprint = content_fingerprint(row)
            occurrence = occurrences.get(fingerprint, 0)
            occurrences[fingerprint] = occurrence + 1
        message = build_message(mapping, row, occurrence)
        batch.append(
            check_message(message, envelope, default_type=None, max_bytes=MAX_MESSAGE_BYTES)
        )
    except (InvalidMessage, InvalidField, InvalidImportFile) as e:  # the row's own fault
        return e.message
    except Exception as e:  # a defect of ours must not stop the rows after this one
        return f"the row could not be converted ({type(e).__name__}); please report it"
    return None


def upload(
    *,
    store: Store,
    writer: EventWriter,
    source: Source,
    data: BinaryIO,
    file_name: str,
    mapping: Mapping,
    data_dir: Path,
    rejects_dir: Path,
    wait: bool = True,
) -> Imported | ImportStarted:
    """An uploaded file (the API and the console): saved under DATA_DIR/uploads, imported,
    then removed. With `wait` the summary is returned (errors raise); otherwise the import
    runs on a thread and its progress and outcome are in `list_imports`."""
    file_name = Path(file_name).name or "upload.csv"
    saved = save_upload(data, file_name, data_dir)
    import_id = "imp_" + secrets.token_hex(6)
    record_start(store, import_id, source, file_name)

    def run() -> ImportSummary:
        try:
            return import_file(
                store=store,
                writer=writer,
                source=source,
                path=saved,
                mapping=mapping,
                rejects_dir=rejects_dir,
                file_name=file_name,
                import_id=import_id,
            )
        except Exception as e:
            mark_ended(store, import_id, FAILED, _reason(e))
            if wait:
                raise
            return ImportSummary(import_id, file_name, source.name, status=FAILED)
        finally:
            saved.unlink(missing_ok=True)

    if wait:
        return run().result()
    threading.Thread(target=run, name=f"import-{import_id}", daemon=True).start()
    return ImportStarted(import_id=import_id, status="running")


def save_upload(data: BinaryIO, file_name: str, data_dir: Path) -> Path:
    """An uploaded file on disk under DATA_DIR/uploads (keeping its suffix, which tells
    the format); the caller removes it when done."""
    uploads = data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=uploads, suffix=Path(file_name).suffix, delete=False
    ) as handle:
        shutil.copyfileobj(data, handle)
    return Path(handle.name)


def reject_file(store: Store, import_id: str) -> Path:
    """The reject file of an import (NotFound when there is none)."""
    row = store.fetch_one("SELECT reject_file FROM imports WHERE id = ?", [import_id])
    if row is None or not row[0] or not Path(row[0]).exists():
        raise NotFound(f"no reject file for import {import_id!r}")
    return Path(row[0])


IMPORTS_PAGE_MAX = 1000
_IMPORTS_PAGE = (
    "SELECT i.id, s.name AS source, i.file_name, i.started_at, i.finished_at, i.status, "
    "i.reason, i.rows, i.accepted, i.duplicates, i.rejected, i.reject_file, "
    "epoch_us(i.started_at) AS started_us FROM imports i "
    "LEFT JOIN sources s ON s.id = i.source_id {after} "
    "ORDER BY i.started_at DESC, i.id DESC LIMIT $fetch"
)


def imports_page(store: Store, *, limit: int = 20, cursor: str | None = None) -> Page:
    """A page of the imports, newest first, with the total: the same rows as
    `list_imports`, in an order that stays put while imports start (keyset paging on
    the start time and the id).

    Raises InvalidField for a limit outside 1 to IMPORTS_PAGE_MAX and InvalidCursor for
    a cursor this list did not hand out."""
    check_limit(limit, IMPORTS_PAGE_MAX)
    after = decode_cursor("imports", cursor, str)
    parameters: dict[str, Any] = {"fetch": limit + 1}
    condition = ""
    if after is not None:
        started, _, import_id = after.partition("|")
        if not started.lstrip("-").isdigit():
            raise InvalidCursor(
                f"cursor {cursor!r} is not a cursor of the imports; send back the "
                "next_cursor of the previous page unchanged",
                field="cursor",
                value=cursor,
            )
        condition = (
            "WHERE epoch_us(i.started_at) < $started OR "
            "(epoch_us(i.started_at) = $started AND i.id < $id)"
        )
        parameters |= {"started": int(started), "id": import_id}
    rows = store.fetch_dicts(_IMPORTS_PAGE.format(after=condition), parameters)
    more, kept = len(rows) > limit, rows[:limit]
    next_cursor = (
        encode_cursor("imports", f"{kept[-1]['started_us']}|{kept[-1]['id']}")
        if more and kept
        else None
    )
    for row in kept:
        del row["started_us"]
        for column in ("started_at", "finished_at"):
            row[column] = iso_utc(row[column])
    total = store.fetch_one("SELECT count(*) FROM imports")
    return Page(items=kept, total=total[0] if total else 0, limit=limit, next_cursor=next_cursor)


def list_imports(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Imports, newest first. `status` is running, done, failed or interrupted; `reason`
    says why for the last two."""
    rows = store.fetch_dicts(
        "SELECT i.id, s.name AS source, i.file_name, i.started_at, i.finished_at, i.status, "
        "i.reason, i.rows, i.accepted, i.duplicates, i.rejected, i.reject_file FROM imports i "
        "LEFT JOIN sources s ON s.id = i.source_id ORDER BY i.started_at DESC LIMIT ?",
        [limit],
    )
    for row in rows:
        for column in ("started_at", "finished_at"):
            row[column] = iso_utc(row[column])
    return rows


def mark_ended(store: Store, import_id: str, status: str, reason: str) -> None:
    """An import that stopped before it was done: FAILED or INTERRUPTED, and why."""
    store.execute(
        "UPDATE imports SET status = ?, reason = ?, finished_at = ? WHERE id = ?",
        [status, reason[:500], utc_now(), import_id],
    )


def mark_interrupted(store: Store) -> int:
    """Imports left running by a process that stopped (kill -9, a crash, a power cut).

    Called when a process opens the store: DuckDB lets one process at a time write to
    it, so an import still marked running cannot be running any more. Without this it
    would say running for ever, and the console would poll it for ever. Returns how
    many were marked.
    """
    running = store.fetch_all("SELECT id FROM imports WHERE status = ?", [RUNNING])
    for (import_id,) in running:
        mark_ended(
            store,
            import_id,
            INTERRUPTED,
            "the process running it stopped before it finished; import the file again: "
            "rows already imported are recognised and not added twice",
        )
    return len(running)


def _reason(error: Exception) -> str:
    return error.message if isinstance(error, TesseraError) else type(error).__name__


# -- readers: each yields the header (or None) first, then (line, row) -------------


def _read(path: Path, file_format: str, mapping: Mapping, name: str) -> Iterator[Any]:
    return read_rows(path, file_format, name, mapping.delimiter)


def read_rows(
    path: Path, file_format: str, name: str, delimiter: str | None = None
) -> Iterator[Any]:
    """A CSV, JSON lines or Parquet file's header (None for JSON lines) first, then (line,
    row) pairs; a row the reader cannot make out comes as an InvalidImportFile in its
    place. The catalogue's import reads its files with it too."""
    if not path.exists():
        raise InvalidImportFile(f"no file at {path}")
    if file_format == "csv":
        return _read_csv(path, delimiter, name)
    if file_format == "jsonl":
        return _read_jsonl(path)
    return _read_parquet(path, name)


def _read_csv(path: Path, delimiter: str | None, name: str) -> Iterator[Any]:
    # The csv module's limit is process-wide; it is raised (never lowered) to the largest
    # message, so a long cell is read and judged by the message size, and a cell longer
    # than any message is a rejected row, not an aborted file.
    if csv.field_size_limit() < MAX_MESSAGE_BYTES:
        csv.field_size_limit(MAX_MESSAGE_BYTES)
    with path.open("r", newline="", encoding="utf-8-sig", errors="replace") as handle:
        if delimiter is None:
            delimiter = _delimiter_of(handle.readline(MAX_MESSAGE_BYTES))
            handle.seek(0)
        lines = _Lines(handle)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = [cell.strip() for cell in next(reader)]
        except StopIteration:
            raise InvalidImportFile(f"{name} is empty: expected a header row") from None
        except csv.Error as e:
            raise InvalidImportFile(f"{name}: the header row cannot be read ({e})") from None
        yield header
        while True:
            lines.start_record()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                line = lines.record_line
                lines.skip_rest_of_record()
                yield line, InvalidImportFile(f"row cannot be read: {_csv_reason(e)}")
                continue
            if not cells:  # a blank line
                continue
            if len(cells) > len(header):
                yield (
                    lines.record_line,
                    InvalidImportFile(f"row has {len(cells) - len(header)} more cell(s) than "
                                      "the header"),
                )  # fmt: skip
                continue
            row: dict[str, Any] = dict.fromkeys(header)
            row.update(zip(header, cells, strict=False))
            yield lines.record_line, row


def _delimiter_of(header: str) -> str:
    """The delimiter a header row uses: the candidate it holds most of (a comma when it
    holds none). The header is the one line whose cells are known to be plain names;
    csv.Sniffer, guessing from data rows, was fooled by cells full of commas."""
    counts = {candidate: header.count(candidate) for candidate in _DELIMITERS}
    best = max(counts, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


class _Lines:
    """A CSV file's physical lines as the csv reader takes them: counted, so a row is
    reported at the line it starts on, and with the quotes seen since its start, so the
    rest of a row the reader refused inside a quoted cell can be skipped."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.number = 0
        self.record_line = 1
        self._quotes = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line: str = next(self._handle)
        self.number += 1
        self._quotes += line.count('"')
        return line

    def start_record(self) -> None:
        self.record_line = self.number + 1
        self._quotes = 0

    def skip_rest_of_record(self) -> None:
        """An odd number of quotes: the reader stopped inside a quoted cell, whose end
        (and the row's) is where the quotes balance again."""
        while self._quotes % 2:
            try:
                next(self)
            except StopIteration:
                return


def _csv_reason(error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        return (
            f"a cell is longer than {MAX_MESSAGE_BYTES:,} characters, more than a whole "
            "message may hold"
        )
    return str(error)


def _read_jsonl(path: Path) -> Iterator[Any]:
    yield None
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = parse_json(line)
            except orjson.JSONDecodeError as e:
                yield number, InvalidImportFile(f"line is not valid JSON: {e}")
                continue
            if not isinstance(row, dict):
                yield number, InvalidImportFile("line must be a JSON object")
                continue
            if nesting.may_exceed(line) and nesting.depth_exceeds(row):
                yield (
                    number,
                    _TooDeepRow(
                        f"line nests objects or arrays more than {nesting.MAX_DEPTH} levels "
                        "deep; flatten it",
                        row,
                    ),
                )
                continue
            yield number, row


class _TooDeepRow(InvalidImportFile):
    """A row refused for its nesting, which carries the row to show it clipped."""

    code = "import_row_too_deep"

    def __init__(self, message: str, row: Any) -> None:
        super().__init__(message)
        self.row = row


def _read_parquet(path: Path, name: str) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        # The message may name the saved copy (a temporary file): name the upload instead.
        reason = str(e).replace(str(path), name)
        raise InvalidImportFile(f"{name} is not a readable Parquet file: {reason}") from None
    yield parquet.schema_arrow.names
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (pa.ArrowException, OSError, ValueError) as e:
        reason = str(e).replace(str(path), name)
        raise InvalidImportFile(
            f"{name} cannot be read past row {number}: {reason}; the rows before it are "
            "imported, and importing the file again after a fix adds only the rest"
        ) from None


def _estimate_rows(path: Path, file_format: str) -> int | None:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
    return max(lines - (1 if file_format == "csv" else 0), 0)


def _show_row(row: Any) -> str:
    """A row as the reject file shows it: JSON, clipped where it nests too deep."""
    if isinstance(row, _TooDeepRow):
        row = row.row
    elif isinstance(row, TesseraError):  # a row the reader could not make out
        return ""
    if isinstance(row, dict):
        return orjson.dumps(nesting.clipped(row), default=str).decode()
    return repr(row)


def record_start(store: Store, import_id: str, source: Source, file_name: str) -> None:
    """Make an import visible (status running) before its first row is read, so a
    client polling /api/imports right after the upload finds it."""
    store.execute(
        "INSERT INTO imports (id, source_id, file_name, started_at, status) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status",
        [import_id, source.id, file_name, utc_now(), RUNNING],
    )


def _record_progress(store: Store, summary: ImportSummary, *, finished: bool = False) -> None:
    store.execute(
        "UPDATE imports SET rows = ?, accepted = ?, duplicates = ?, rejected = ?, "
        "reject_file = ?, status = ?, finished_at = ? WHERE id = ?",
        [
            summary.rows,
            summary.accepted,
            summary.duplicates,
            summary.rejected,
            summary.reject_file,
            summary.status,
            utc_now() if finished else None,
            summary.import_id,
        ],
    )
