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

from tessera import spreadsheet
from tessera.errors import (
    InvalidImportFile,
    InvalidMapping,
    InvalidMessage,
    NotFound,
    TesseraError,
)
from tessera.events import rejects as reject_files
from tessera.events.contract import Envelope, EventRow, check_message
from tessera.events.mapping import Mapping, check_columns, content_fingerprint, parse_mapping
from tessera.events.mapping import row_to_message as build_message
from tessera.events.sources import Source
from tessera.events.timestamps import iso_utc, now_micros, utc_now
from tessera.events.writer import EventWriter
from tessera.store import Store

CHUNK_ROWS = 5_000
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
    status: str = "running"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_mapping(text: str) -> Mapping:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidMapping(f"the mapping is not valid YAML: {e}") from None
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
    rows = _read(path, file_format, mapping)
    columns = next(rows)  # the reader yields its header first
    if columns is not None:
        check_columns(mapping, columns)
    total = _estimate_rows(path, file_format)
    record_start(store, summary.import_id, source, summary.file)
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

        for line, row in rows:  # type: ignore[misc]
            summary.rows += 1
            try:
                if isinstance(row, TesseraError):
                    raise row
                occurrence = 0
                if mapping.message_id is None:
                    fingerprint = content_fingerprint(row)
                    occurrence = occurrences.get(fingerprint, 0)
                    occurrences[fingerprint] = occurrence + 1
                message = build_message(mapping, row, occurrence)
                batch.append(check_message(message, envelope, default_type=None, max_bytes=1 << 20))
            except (InvalidMessage, InvalidImportFile) as e:
                summary.rejected += 1
                rejects.writerow([line, e.message, _show_row(row)])
            if len(batch) >= CHUNK_ROWS:
                flush()
        flush()
    if summary.rejected:
        summary.reject_file = str(reject_path)
    else:
        reject_path.unlink()
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.status = "done"
    _record_progress(store, summary, finished=True)
    return summary


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
) -> dict[str, Any]:
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
            reason = e.message if isinstance(e, TesseraError) else type(e).__name__
            mark_failed(store, import_id, reason)
            if wait:
                raise
            return ImportSummary(import_id, file_name, source.name, status="failed")
        finally:
            saved.unlink(missing_ok=True)

    if wait:
        return run().to_dict()
    threading.Thread(target=run, name=f"import-{import_id}", daemon=True).start()
    return {"import_id": import_id, "status": "running"}


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


def list_imports(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    rows = store.fetch_dicts(
        "SELECT i.id, s.name AS source, i.file_name, i.started_at, i.finished_at, i.status, "
        "i.rows, i.accepted, i.duplicates, i.rejected, i.reject_file FROM imports i "
        "LEFT JOIN sources s ON s.id = i.source_id ORDER BY i.started_at DESC LIMIT ?",
        [limit],
    )
    for row in rows:
        for column in ("started_at", "finished_at"):
            row[column] = iso_utc(row[column])
    return rows


def mark_failed(store: Store, import_id: str, reason: str) -> None:
    store.execute(
        "UPDATE imports SET status = ?, finished_at = ? WHERE id = ?",
        [f"failed: {reason}"[:500], utc_now(), import_id],
    )


# -- readers: each yields the header (or None) first, then (line, row) -------------


def _read(path: Path, file_format: str, mapping: Mapping) -> Iterator[Any]:
    if not path.exists():
        raise InvalidImportFile(f"no file at {path}")
    if file_format == "csv":
        return _read_csv(path, mapping.delimiter)
    if file_format == "jsonl":
        return _read_jsonl(path)
    return _read_parquet(path)


def _read_csv(path: Path, delimiter: str | None) -> Iterator[Any]:
    with path.open("r", newline="", encoding="utf-8-sig", errors="replace") as handle:
        if delimiter is None:
            sample = handle.read(64 * 1024)
            handle.seek(0)
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        if reader.fieldnames is None:
            raise InvalidImportFile(f"{path.name} is empty: expected a header row")
        yield [name.strip() for name in reader.fieldnames]
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
        for row in reader:
            if None in row:  # more cells than the header has
                extra = row.pop(None)  # type: ignore[call-overload]
                yield (
                    reader.line_num,
                    InvalidImportFile(f"row has {len(extra)} more cell(s) than the header"),
                )
                continue
            yield reader.line_num, row


def _read_jsonl(path: Path) -> Iterator[Any]:
    yield None
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                yield number, InvalidImportFile(f"line is not valid JSON: {e}")
                continue
            if not isinstance(row, dict):
                yield number, InvalidImportFile("line must be a JSON object")
                continue
            yield number, row


def _read_parquet(path: Path) -> Iterator[Any]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:
        raise InvalidImportFile(f"{path.name} is not a readable Parquet file: {e}") from e
    yield parquet.schema_arrow.names
    number = 0
    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield number, row


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
    if isinstance(row, dict):
        return orjson.dumps(row, default=str).decode()
    return repr(row)


def record_start(store: Store, import_id: str, source: Source, file_name: str) -> None:
    """Make an import visible (status running) before its first row is read, so a
    client polling /api/imports right after the upload finds it."""
    store.execute(
        "INSERT INTO imports (id, source_id, file_name, started_at, status) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status",
        [import_id, source.id, file_name, utc_now(), "running"],
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

