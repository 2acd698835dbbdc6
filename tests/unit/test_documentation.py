"""Every setting and every command is documented in the README (a datasette habit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main

from tessera.cli import app
from tessera.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(name: str) -> None:
    assert f"TESSERA_{name.upper()}" in README


def _leaf_commands(command: Any, path: str) -> list[str]:
    """Every runnable command under `command`, however deep the groups nest.

    Typer ships its own copy of click, so groups are told by their `commands`.
    """
    if hasattr(command, "commands"):
        return [
            leaf
            for name, sub in command.commands.items()
            for leaf in _leaf_commands(sub, f"{path} {name}".strip())
        ]
    return [path]


def _commands(group: typer.Typer) -> list[str]:
    return _leaf_commands(typer.main.get_command(group), "")


def test_the_command_walk_reaches_every_level() -> None:
    commands = _commands(app)
    assert max(len(command.split()) for command in commands) >= 3
    assert all(command.split()[0] for command in commands)


@pytest.mark.parametrize("command", _commands(app))
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"tessera {command}" in README
