"""The files Tessera keeps besides its database and its log: reject files, stored
uploads, destination spools and finished files, demo data. Erasure rewrites each file
that names the person without those rows, and the proof scans every file's bytes.

A text file (CSV, JSON lines, JSON) loses every line naming a needle; a Parquet file
every row naming one; a file of another format that names one is reported, not guessed
at. A rewrite goes to a temporary file beside it (fsync), renamed over the original:
a crash leaves the old file or the new one, never half of one. Needles are compared
lower-cased.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: how much of a file is read at once when scanning it (needles straddling two reads
#: are found through the overlap)
CHUNK_BYTES = 8 * 1024 * 1024
_TEXT_SUFFIXES = (".csv", ".jsonl", ".json", ".txt", ".tsv", ".ndjson", ".log")


@dataclass(slots=True)
class FileSetCleaned:
    """One folder's files after erasure: lines or rows removed, files rewritten, and the
    files that name a needle in a format that cannot be rewritten."""

    removed: int = 0
    rewritten: int = 0
    refused: list[str] = field(default_factory=list)


def files_under(root: Path, *, skip: Sequence[Path] = ()) -> Iterator[Path]:
    """Every regular file under `root`, except those under or equal to `skip`."""
    skipped = [s.resolve() for s in skip]
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            resolved = path.resolve()
            if any(resolved == s or s in resolved.parents for s in skipped):
                continue
            if path.is_file() and not path.is_symlink():
                yield path


def names_any(path: Path, needles: Sequence[bytes]) -> bool:
    """Whether the file's bytes hold a needle (lower-cased, read in chunks)."""
    if not needles:
        return False
    overlap = max(len(n) for n in needles)
    tail = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                window = (tail + chunk).lower()
                if any(needle in window for needle in needles):
                    return True
                tail = window[-overlap:]
    except FileNotFoundError:
        return False
    return False


def holds(path: Path, needles: Sequence[bytes]) -> bool:
    """Whether the file holds a needle: its bytes, and a Parquet file's decoded values
    too (its pages may be compressed, hiding the bytes from a plain scan)."""
    if names_any(path, needles):
        return True
    if path.suffix.lower() == ".parquet" and needles:
        try:
            return bool(_parquet_mask(pq.read_table(path), needles).any())
        except (pa.ArrowException, OSError):
            return False
    return False


def clean(paths: Sequence[Path], needles: Sequence[bytes]) -> FileSetCleaned:
    """Rewrite each file that names a needle without the lines or rows naming one."""
    result = FileSetCleaned()
    for path in paths:
        if not holds(path, needles):
            continue
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            removed = _clean_parquet(path, needles)
        elif suffix in _TEXT_SUFFIXES or path.name.endswith(".spool.jsonl"):
            removed = _clean_text(path, needles)
        else:
            result.refused.append(path.name)
            continue
        result.removed += removed
        result.rewritten += 1
    return result


def _clean_text(path: Path, needles: Sequence[bytes]) -> int:
    kept: list[bytes] = []
    removed = 0
    with path.open("rb") as handle:
        for line in handle:
            lowered = line.lower()
            if any(needle in lowered for needle in needles):
                removed += 1
            else:
                kept.append(line)
    _replace(path, b"".join(kept))
    return removed


def _clean_parquet(path: Path, needles: Sequence[bytes]) -> int:
    table = pq.read_table(path)
    mask = _parquet_mask(table, needles)
    kept = table.filter(pa.array(~mask))
    sink = pa.BufferOutputStream()
    pq.write_table(kept, sink)
    _replace(path, sink.getvalue().to_pybytes())
    return int(mask.sum())


def _parquet_mask(table: pa.Table, needles: Sequence[bytes]) -> np.ndarray:
    mask = np.zeros(table.num_rows, dtype=bool)
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        lowered = pc.utf8_lower(table[name])
        for needle in needles:
            hits = pc.fill_null(pc.match_substring(lowered, needle.decode()), False)
            mask |= np.asarray(hits.to_numpy(zero_copy_only=False), dtype=bool)
    return mask


def _replace(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
