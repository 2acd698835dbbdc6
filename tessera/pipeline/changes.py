"""Which profiles the pipeline changed, for the parts that serve from memory (the decision
API): they follow the feed and re-read only those profiles, instead of everyone on a timer.

The pipeline posts the profiles each batch touched (and merged away), and those each
streaming segment flush evaluated; a step that may change anyone (the whole-population
refresh and its segment sweep, a rebuild, a purge, predictions, memory reloaded) posts
"everyone". A reader keeps the mark `since` gave it and asks again with it: it gets the
profiles changed since, or None when it must read everyone (everyone changed, or the feed
no longer holds all that happened since its mark).
"""

from __future__ import annotations

import threading
from collections import deque

#: posts kept; a reader further behind reads everyone again
KEPT_POSTS = 4096


class ChangeFeed:
    def __init__(self, kept: int = KEPT_POSTS) -> None:
        self._kept = kept
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
            if len(self._posts) > self._kept:
                self._floor = self._posts.popleft()[0]

    def post_everyone(self) -> None:
        with self._lock:
            self._mark += 1
            self._floor = self._mark
            self._posts.clear()

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
