"""How one offer is chosen among those a person is eligible for. Pure.

- `priority`: the highest priority (ties: the name first in alphabetical order);
- `weighted`: at random, in proportion to the offers' weights;
- `experiment`: a share of people (TESSERA_OFFER_HOLDOUT_SHARE) is held out and sees no
  offer; the others get one of the offers at random by weight. Both draws are a hash of the
  person's experiment key (their profile id, kept when they identify: `decisions.py`), so a
  person stays in their group and variant from one request to the next, and lift is the
  conversion of those shown an offer against those held out (`decisions.lift`), like a
  campaign's (tessera/audiences/campaigns.py).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["priority", "weighted", "experiment"]
STRATEGIES: tuple[Strategy, ...] = ("priority", "weighted", "experiment")
HOLDOUT = "holdout"


@dataclass(frozen=True)
class Candidate:
    name: str
    priority: int
    weight: float


@dataclass(frozen=True)
class Choice:
    """The offer chosen (None: none, or held out), the variant recorded, and why."""

    offer: str | None
    variant: str
    reason: str


def bucket(key: str, salt: str) -> float:
    """A number in [0, 1) fixed for (key, salt) and spread evenly: blake2b of both."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose(
    strategy: Strategy,
    candidates: Sequence[Candidate],
    *,
    key: str,
    holdout_share: float,
    rng: random.Random | None = None,
) -> Choice:
    """One offer of `candidates` (those the person is eligible for) by `strategy`."""
    if strategy == "experiment" and bucket(key, HOLDOUT) < holdout_share:
        return Choice(None, HOLDOUT, f"held out of offers to measure lift ({holdout_share:.0%} "
                      "of people)")  # fmt: skip
    if not candidates:
        return Choice(None, "none", "no offer matches")
    ordered = sorted(candidates, key=lambda c: (-c.priority, c.name))
    if strategy == "priority":
        best = ordered[0]
        return Choice(best.name, "priority", f"highest priority ({best.priority}) of "
                      f"{len(candidates)} eligible")  # fmt: skip
    if strategy == "weighted":
        picked = _by_weight(ordered, (rng or random.Random()).random())
        return Choice(picked.name, "weighted", f"drawn by weight ({picked.weight:g} of "
                      f"{sum(c.weight for c in ordered):g})")  # fmt: skip
    picked = _by_weight(sorted(ordered, key=lambda c: c.name), bucket(key, "variant"))
    return Choice(picked.name, picked.name, f"experiment variant (weight {picked.weight:g} "
                  f"of {sum(c.weight for c in ordered):g}), fixed for this person")  # fmt: skip


def _by_weight(candidates: Sequence[Candidate], draw: float) -> Candidate:
    total = sum(max(c.weight, 0.0) for c in candidates)
    if total <= 0:
        return candidates[0]
    point = draw * total
    for candidate in candidates:
        point -= max(candidate.weight, 0.0)
        if point < 0:
            return candidate
    return candidates[-1]
