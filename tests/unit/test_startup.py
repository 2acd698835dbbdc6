"""What starting a process imports: the CLI, the server and each collector load a feature's
heavy libraries only when that feature runs.

Every CLI command, every `tessera serve` and every collector process it spawns (spawn
imports the main module, tessera.cli, again in the child) paid for splink, scipy,
scikit-learn, pyarrow, jsonschema and the whole feature tree before doing anything: about
three seconds each on two busy cores. These tests look at `sys.modules` in a fresh
interpreter, so they cannot be timed wrong: a module is loaded or it is not.

When one fails, the module named was imported at the top of a module on the path shown:
import it inside the function that uses it (with a `TYPE_CHECKING` import for the type
hints), as tessera/cli.py and tessera/personalize/itemsim.py do.
"""

from __future__ import annotations

import subprocess
import sys

import orjson

#: Libraries no process needs before one of its features runs.
HEAVY = ("splink", "sklearn", "scipy", "pyspark", "pandas")
#: What the CLI needs only once a command runs: the store's data libraries, the plans'
#: validator, and the feature tree behind the local backend.
CLI_LATER = (*HEAVY, "pyarrow", "numpy", "jsonschema", "sqlglot", "tessera.backend",
             "tessera.runtime")  # fmt: skip
#: What a collector never needs: it writes the event log and passes the rest to the core.
COLLECTOR_NEVER = (*HEAVY, "jsonschema", "sqlglot", "fastapi", "tessera.runtime", "tessera.app")


def _loaded_after(code: str, watched: tuple[str, ...]) -> dict[str, str]:
    """The watched modules a fresh interpreter holds after running `code`, each with the
    chain of imports that brought it (from `-X importtime`)."""
    probe = f"{code}\nimport sys\nprint(__import__('json').dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe],
        capture_output=True,
        check=True,
        timeout=300,
    )
    loaded = set(orjson.loads(done.stdout.splitlines()[-1]))
    return {name: _chain(done.stderr.decode(), name) for name in watched if name in loaded}


def _chain(importtime: str, name: str) -> str:
    """Who imported `name` first: its line in -X importtime's tree and every parent's."""
    entries = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        module = line.rsplit("|", 1)[1]
        entries.append((len(module) - len(module.lstrip()), module.strip()))
    for index, (depth, module) in enumerate(entries):
        if module == name:
            chain = [module]
            for later_depth, parent in entries[index + 1 :]:
                if later_depth < depth:
                    chain.append(parent)
                    depth = later_depth
            return " <- ".join(chain)
    return f"{name} (imported before -X importtime could see it)"


def test_the_cli_and_its_help_load_no_feature_library() -> None:
    # Building every command (what `tessera --help` and any command does first) evaluates
    # every command's signature: a type there that needs a feature module shows up here too.
    code = (
        "import typer.main\n"
        "from tessera.cli import app\n"
        "root = typer.main.get_command(app)\n"
        "def walk(command):\n"
        "    context = command.context_class(command)\n"
        "    command.get_params(context)\n"
        "    for name in getattr(command, 'list_commands', lambda c: [])(context):\n"
        "        walk(command.get_command(context, name))\n"
        "walk(root)"
    )
    assert _loaded_after(code, CLI_LATER) == {}


def test_a_collector_process_loads_no_core_code() -> None:
    # What a spawned collector imports: the main module again (tessera.cli, as `tessera
    # serve` or `python -m tessera.cli serve` runs it), then its own entry point.
    code = "import tessera.cli\nimport tessera.collector.process"
    assert _loaded_after(code, COLLECTOR_NEVER) == {}


def test_the_server_starts_without_the_model_libraries() -> None:
    # The core imports every route, hence every feature module, but not the libraries that
    # only training a model, matching identities or running Spark needs.
    assert _loaded_after("import tessera.server", HEAVY) == {}
