"""Every setting and every command is documented in the README (a datasette habit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from tessera.cli import app
from tessera.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(name: str) -> None:
    assert f"TESSERA_{name.upper()}" in README


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    click_group = typer.main.get_command(group)
    found = []
    for name, command in click_group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            found += [f"{prefix}{name} {sub}" for sub in command.commands]
        else:
            found.append(f"{prefix}{name}")
    return found


@pytest.mark.parametrize("command", _commands(app))
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"tessera {command}" in README
