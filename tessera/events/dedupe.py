"""Which (source, messageId) pairs the log already holds, in 8 bytes per event.

Clients retry with the same messageIds (after a 5xx, a 429 or a lost connection), and
the log in files may then hold a message twice, so every event is checked here when it
is loaded. The index is a large sorted numpy array of 64-bit keys plus a small sorted
array of recent additions, folded into the large one when it passes 1/8 of it;
membership for a whole load costs two vectorised binary searches. That is cheap enough
to keep every key for ever (10 million events: 80 MB), which is the default;
`dedupe_window_days` bounds it for very large logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

Keys = npt.NDArray[np.uint64]
Found = npt.NDArray[np.bool_]


class DedupeIndex:
    """A set of 64-bit message keys optimised for batch look-ups."""

    def __init__(self, keys: npt.ArrayLike | None = None) -> None:
        initial = np.asarray(keys if keys is not None else [], dtype=np.uint64)
        self._sorted: Keys = np.unique(initial)
        self._recent: Keys = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        self._fold()
        return len(self._sorted)

    def __contains__(self, key: int) -> bool:
        return bool(self.contains([key])[0])

    def contains(self, keys: Sequence[int]) -> list[bool]:
        """For each key, whether it is already in the index."""
        if not keys:
            return []
        found: list[bool] = self.contains_array(
            np.fromiter(keys, dtype=np.uint64, count=len(keys))
        ).tolist()
        return found

    def contains_array(self, probe: Keys) -> Found:
        """For each key of `probe`, whether it is already in the index."""
        found = _members(self._sorted, probe)
        if len(self._recent):
            found |= _members(self._recent, probe)
        return found

    def add(self, keys: Iterable[int]) -> None:
        self.add_array(np.fromiter(keys, dtype=np.uint64))

    def add_array(self, keys: Keys) -> None:
        self._recent = _merged(self._recent, keys)
        # Amortised: the large array is rebuilt only when the recent one has grown to
        # 1/8 of it.
        if len(self._recent) > max(50_000, len(self._sorted) // 8):
            self._fold()

    def _fold(self) -> None:
        if len(self._recent):
            self._sorted = _merged(self._sorted, self._recent)
            self._recent = np.empty(0, dtype=np.uint64)


def _merged(sorted_keys: Keys, keys: Keys) -> Keys:
    """`sorted_keys` with `keys` added, still sorted and without repeats. The new keys are
    sorted alone and inserted at their places: one copy of the large array, where
    np.union1d sorted the whole of it again (the loader adds keys every few milliseconds,
    and that sort took an eighth of the core process under load)."""
    new = np.unique(keys)
    if len(sorted_keys) and len(new):
        new = new[~_members(sorted_keys, new)]
    if not len(new):
        return sorted_keys
    return np.insert(sorted_keys, np.searchsorted(sorted_keys, new), new)


def _members(sorted_keys: Keys, probe: Keys) -> Found:
    found = np.zeros(len(probe), dtype=bool)
    if len(sorted_keys) and len(probe):
        positions = np.searchsorted(sorted_keys, probe)
        inside = positions < len(sorted_keys)
        found[inside] = sorted_keys[positions[inside]] == probe[inside]
    return found


def first_unseen(index: DedupeIndex, keys: Keys) -> Found:
    """Which keys to keep: not in the index, and the first of their value in `keys`
    (a retry can reach the log twice before either copy is loaded)."""
    keep = np.zeros(len(keys), dtype=bool)
    if len(keys):
        _, first = np.unique(keys, return_index=True)
        keep[first] = True
        keep &= ~index.contains_array(keys)
    return keep
