"""The layering contract (pyproject.toml, checked by `lint-imports` in `make lint`) holds,
and covers the whole package: a new top-level module or package must be given its floor."""

from __future__ import annotations

import logging
import pkgutil
import re
import tomllib
from pathlib import Path
from typing import Any

from importlinter.cli import lint_imports

import tessera

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# Deliberately outside the layers; pyproject.toml says why next to the contract.
UNPLACED = {"tessera.privacy", "tessera.demo"}


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _placed() -> set[str]:
    return {
        module
        for layer in _contracts()["layers"]["layers"]
        for module in re.split(r"\s*[|:]\s*", layer.strip())
    }


def test_no_import_runs_back_up_the_layers_or_across_the_edges() -> None:
    """Fails on identity importing the pipeline or the 360° view (as unmerge once did)."""
    # import-linter configures logging with dictConfig, which disables every logger that
    # exists at that moment (tessera's among them): later tests reading caplog saw nothing.
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    disabled = {logger: logger.disabled for logger in loggers}
    try:
        assert lint_imports(str(PYPROJECT), no_cache=True, no_logo=True) == 0
    finally:
        for logger, was in disabled.items():
            logger.disabled = was


def test_every_top_level_module_has_a_layer() -> None:
    modules = {f"tessera.{info.name}" for info in pkgutil.iter_modules(tessera.__path__)}
    assert modules - _placed() == UNPLACED


def test_the_layers_name_only_modules_that_exist() -> None:
    modules = {f"tessera.{info.name}" for info in pkgutil.iter_modules(tessera.__path__)}
    assert _placed() <= modules


def test_every_feature_package_is_kept_from_the_edges_and_the_pipeline() -> None:
    features = set(_contracts()["features"]["source_modules"])
    layers = _contracts()["layers"]["layers"]
    below_pipeline = layers[layers.index("tessera.pipeline") + 1 :]
    packages = {
        module
        for layer in below_pipeline
        for module in re.split(r"\s*[|:]\s*", layer.strip())
        if (Path(tessera.__path__[0]) / module.removeprefix("tessera.")).is_dir()
    }
    assert packages | {"tessera.privacy"} == features
