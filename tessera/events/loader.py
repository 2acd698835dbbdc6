"""The loader: the core process's thread that tails the event log in files into DuckDB.

Every writer (this process's LogSink, each collector process) appends to its own
segment files; the loader reads every writer's new whole records from the positions
stored in `log_positions`, and hands them to the EventWriter, which dedupes, numbers
and appends them and moves the positions in one transaction. Then it wakes the
pipeline and deletes the segments it has finished. It polls (every POLL_SECONDS) for
writers in other processes; a sink in this process wakes it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tessera.eventlog import Position, backlog, read_new, remove_loaded
from tessera.events import failures
from tessera.events.writer import EventWriter, Loaded

log = logging.getLogger(__name__)

#: how often the loader looks for records appended by other processes
POLL_SECONDS = 0.02
#: the longest a reader of `events` waits for the loader to catch up (`sync`)
SYNC_SECONDS = 2.0
#: the pause after a failed load (the store, a file that cannot be read)
FAILURE_PAUSE_SECONDS = 1.0


class LogLoader:
    """Loads the log in files into `events` and `rejected` (see the module docstring)."""

    def __init__(
        self,
        writer: EventWriter,
        log_dir: Path,
        *,
        on_load: Callable[[int], None] | None = None,
        read_bytes: int | None = None,
    ) -> None:
        self._writer = writer
        self._log_dir = log_dir
        self._on_load = on_load
        self._read_bytes = read_bytes
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loading = threading.Lock()  # one load at a time: positions are read, then moved
        #: loads committed; events loaded, and duplicates dropped, since start
        self.loads = 0
        self.events = 0
        self.duplicates = 0
        self.torn_tails = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following the log (what is not loaded stays in the files)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wake(self) -> None:
        """Something was appended: look now rather than at the next poll."""
        self._wake.set()

    def load_once(self) -> Loaded | None:
        """Load one batch of new records, if there are any; None when there were none."""
        with self._loading:
            return self._load()

    def _load(self) -> Loaded | None:
        positions = dict(self._writer.positions)
        batch = read_new(self._log_dir, positions, **self._read_kwargs())
        if not batch.positions:
            return None
        loaded = self._writer.load(batch)
        self.loads += 1
        self.events += loaded.events
        self.duplicates += loaded.duplicates
        self.torn_tails += batch.torn_tails
        remove_loaded(self._log_dir, self._writer.positions)
        if self._on_load is not None and loaded.events:
            self._on_load(loaded.last_seq)
        return loaded

    @contextmanager
    def held(self) -> Iterator[dict[str, Position]]:
        """Load everything the files hold, then keep the loader still until the block
        ends; yields the positions (all before them is loaded). For changing the loaded
        part of the files in place (an erasure's scrub, eventlog/scrub.py)."""
        with self._loading:
            while self._load() is not None:
                pass
            yield dict(self._writer.positions)

    def catch_up(self) -> int:
        """Load until the files hold nothing new; returns the events loaded."""
        total = 0
        while (loaded := self.load_once()) is not None:
            total += loaded.events
        return total

    def sync(self, timeout_seconds: float = SYNC_SECONDS) -> bool:
        """Load what the log holds now (read-your-writes for a reader of `events` right
        after a 200); gives up after `timeout_seconds` when far behind. True when caught
        up."""
        deadline = time.monotonic() + timeout_seconds
        while self.load_once() is not None:
            if time.monotonic() > deadline:
                return False
        return True

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Nothing is loaded (and no loaded segment deleted) while this is held: what a
        backup needs between copying the store and copying the log's files."""
        with self._loading:
            yield

    def backlog(self) -> int:
        """Events in the log's files not loaded yet."""
        return backlog(self._log_dir, dict(self._writer.positions))

    def _read_kwargs(self) -> dict[str, int]:
        return {} if self._read_bytes is None else {"max_bytes": self._read_bytes}

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.load_once() is not None:
                    continue  # there may be more: read again without waiting
            except Exception as error:
                # Type and place only: the records may hold personal data.
                failure = failures.describe(error)
                self.failures += 1
                log.error(
                    "loading the event log failed (%s at %s); it will be retried",
                    failure.error_type,
                    failure.location,
                )
                self._stopping.wait(FAILURE_PAUSE_SECONDS)
                continue
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
