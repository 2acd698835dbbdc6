"""Probabilistic record linkage run by Splink (Fellegi-Sunter, parameters by EM) on DuckDB.

The one place that runs Splink: it works on its own in-memory DuckDB connection, so the
store's file is not written (nor locked) while a model trains. The model (comparisons,
blocking rules) is identity's (`identity/matching_model.py`); this runs it, as Splink's
own design has it: the model produces SQL, one small class per engine runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa


@dataclass(frozen=True)
class Training:
    """How the model's parameters are estimated (Splink's three steps)."""

    #: rules that say "surely the same" to estimate the prior, and their assumed recall
    deterministic_rules: Sequence[Any]
    recall: float
    #: blocking rules EM is run over, one estimation each (each leaves its own fields out)
    em_rules: Sequence[Any]
    #: random pairs the u probabilities are estimated from
    u_pairs: float = 1e6
    seed: int = 1


@dataclass(frozen=True)
class Linked:
    """Scored pairs (Splink's predict: unique_id_l, unique_id_r, match_weight,
    match_probability, gamma_* and bf_* per comparison, the compared values) and the
    trained model as Splink's settings JSON, to score later records with the same one."""

    pairs: list[dict[str, Any]]
    model: dict[str, Any]


def link(
    records: pa.Table | Sequence[pa.Table],
    settings: Any,
    *,
    training: Training | None,
    threshold: float,
    model: dict[str, Any] | None = None,
) -> Linked:
    """Train (unless `model` is given: score with it) and predict pairs above `threshold`.

    `records` is one table (dedupe) or two (link one to the other); `settings` a Splink
    SettingsCreator or settings dict.
    """
    from splink import DuckDBAPI, Linker
    from splink.internals.exceptions import EMTrainingException

    logging.getLogger("splink").setLevel(logging.ERROR)
    connection = duckdb.connect(":memory:")
    try:
        api = DuckDBAPI(connection)
        tables = [records] if isinstance(records, pa.Table) else list(records)
        frames = [
            api.register(table, dataset_display_name=f"records_{n}")
            for n, table in enumerate(tables)
        ]
        linker = Linker(
            frames[0] if len(frames) == 1 else frames,
            model if model is not None else settings,
            log_level=None,
        )
        if model is None and training is not None:
            linker.training.estimate_probability_two_random_records_match(
                list(training.deterministic_rules), recall=training.recall
            )
            settings_object = linker._settings_obj
            if not settings_object._probability_two_random_records_match:
                # No pair is surely the same (few records left, or all linked already):
                # a prior of zero would make every weight infinite; assume one in a
                # thousand random pairs.
                settings_object._probability_two_random_records_match = 1e-3
            linker.training.estimate_u_using_random_sampling(
                max_pairs=training.u_pairs, seed=training.seed
            )
            for rule in training.em_rules:
                try:
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        rule, estimate_without_term_frequencies=True
                    )
                except (EMTrainingException, ValueError):
                    # No pairs agree on this rule (few records): the parameters it would
                    # have estimated keep the others' estimates or Splink's defaults.
                    continue
        predictions = linker.inference.predict(threshold_match_probability=threshold)
        pairs = predictions.as_record_list()
        return Linked(pairs, linker.misc.save_model_to_json())
    finally:
        connection.close()
