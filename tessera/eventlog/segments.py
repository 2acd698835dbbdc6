"""Where a writer's segment files live and what they are called.

`<log_dir>/<writer_id>/<number>.tlog`, numbered from 1 with zero-padding so that the
names sort as the numbers do. A writer only ever appends to its highest-numbered
segment; a segment with a higher one beside it is sealed: nothing more is written to it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SUFFIX = ".tlog"
_WRITER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_NAME = re.compile(r"^(\d{16})\.tlog$")


def valid_writer_id(writer_id: str) -> bool:
    """Lower-case letters, digits, `-` and `_`: a directory name on every system."""
    return bool(_WRITER_ID.match(writer_id))


def segment_path(writer_dir: Path, number: int) -> Path:
    return writer_dir / f"{number:016d}{SUFFIX}"


def segment_numbers(writer_dir: Path) -> list[int]:
    """The writer's segments, oldest first."""
    try:
        names = os.listdir(writer_dir)
    except FileNotFoundError:
        return []
    return sorted(int(found.group(1)) for name in names if (found := _NAME.match(name)))


def writer_ids(log_dir: Path) -> list[str]:
    """Every writer that has a directory under the log, in name order."""
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        return []
    return sorted(e.name for e in entries if e.is_dir() and valid_writer_id(e.name))


def fsync_directory(directory: Path) -> None:
    """Make a file's creation (or removal) in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
