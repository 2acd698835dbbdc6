"""What the lookalike use cases answer, apart from the model code (numpy, scipy), so the
CLI can read a server's answer without importing them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tessera.results import Result


class Lookalike(Result):
    """A lookalike audience: its seed, method and population, how many profiles were
    scored on how many features, its reach, the weights and the held-out evaluation."""

    name: str
    seed: str
    seed_size: int
    method: str
    population: str
    profiles_scored: int
    features: int
    reach: int
    weights: Any
    evaluation: dict[str, Any]


class LookalikeSummary(Result):
    name: str
    seed: str
    method: str
    population: str
    reach: int
    created_at: datetime


class Score(Result):
    """A ranked candidate: its score, its rank and whether the reach keeps it."""

    profile_id: str
    score: float
    rank: int
    in_audience: bool
