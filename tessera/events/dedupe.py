"""Which (source, messageId) pairs the log already holds, in 8 bytes per event.

Clients retry with the same messageIds (after a 5xx, a 429 or a lost connection),
so every accepted message is checked here. The index is a sorted numpy array of
64-bit keys plus a small set of recent additions, folded into the array when it
grows; membership for a whole group costs one vectorised binary search. That is
cheap enough to keep every key for ever (10 million events: 80 MB), which is the
default; `dedupe_window_days` bounds it for very large logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

_Keys = npt.NDArray[np.uint64]


class DedupeIndex:
    """A set of 64-bit message keys optimised for batch look-ups."""

    def __init__(self, keys: npt.ArrayLike | None = None) -> None:
        initial = np.asarray(keys if keys is not None else [], dtype=np.uint64)
        self._sorted: _Keys = np.unique(initial)
        self._recent: set[int] = set()

    def __len__(self) -> int:
        if self._recent:
            self._fold()
        return len(self._sorted)

    def __contains__(self, key: int) -> bool:
        return bool(self.contains([key])[0])

    def contains(self, keys: Sequence[int]) -> list[bool]:
        """For each key, whether it is already in the index."""
        if not keys:
            return []
        probe = np.fromiter(keys, dtype=np.uint64, count=len(keys))
        found = np.zeros(len(probe), dtype=bool)
        if len(self._sorted):
            positions = np.searchsorted(self._sorted, probe)
            inside = positions < len(self._sorted)
            found[inside] = self._sorted[positions[inside]] == probe[inside]
        result: list[bool] = found.tolist()
        if self._recent:
            recent = self._recent
            result = [hit or key in recent for hit, key in zip(result, keys, strict=True)]
        return result

    def add(self, keys: Iterable[int]) -> None:
        self._recent.update(keys)
        if len(self._recent) > max(50_000, len(self._sorted) // 8):
            self._fold()

    def _fold(self) -> None:
        # Amortised: the array is rebuilt only when the set has grown by 1/8 of it.
        extra = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
        self._sorted = np.union1d(self._sorted, extra)
        self._recent = set()
