"""Which profiles the pipeline changed, for the parts that serve from memory (the decision
API): they follow the feed and re-read only those profiles, instead of everyone on a timer.

The pipeline posts the profiles each batch touched (and merged away), those each
streaming segment flush evaluated, and those whose computed traits a whole-population
refresh changed or whose memberships its segment sweep moved; a step that may change
anyone (the day's first refresh, a rebuild, a purge, memory reloaded) posts "everyone".
A reader keeps the mark `since` gave it and asks again with it: it gets the profiles
changed since, or None when it must read everyone (everyone changed, or the feed no
longer holds all that happened since its mark).
"""

from __future__ import annotations

import threading
from collections import deque

#: profile ids kept over all posts (a few seconds of batches at full speed; a reader
#: ticks every half second); a reader further behind reads everyone again
KEPT_PROFILES = 200_000


class ChangeFeed:
    def __init__(self, kept: int = KEPT_PROFILES) -> None:
        self._kept = kept
        self._held = 0
        self._lock = threading.Lock()
        self._mark = 0
        #: the mark of the last "everyone" post, or of the last post dropped from `_posts`
        self._floor = 0
        self._posts: deque[tuple[int, frozenset[str]]] = deque()

    @property
    def mark(self) -> int:
        return self._mark

    def post(self, profiles: set[str] | frozenset[str]) -> None:
        if not profiles:
            return
        with self._lock:
            self._mark += 1
            self._posts.append((self._mark, frozenset(profiles)))
            self._held += len(profiles)
            while self._held > self._kept and len(self._posts) > 1:
                dropped, gone = self._posts.popleft()
                self._floor, self._held = dropped, self._held - len(gone)

    def post_everyone(self) -> None:
        with self._lock:
            self._mark += 1
            self._floor = self._mark
            self._posts.clear()
            self._held = 0

    def since(self, mark: int) -> tuple[int, frozenset[str] | None]:
        """(the current mark, the profiles changed after `mark`, or None for everyone)."""
        with self._lock:
            if mark < self._floor:
                return self._mark, None
            changed: set[str] = set()
            for posted, profiles in reversed(self._posts):
                if posted <= mark:
                    break
                changed |= profiles
            return self._mark, frozenset(changed)
