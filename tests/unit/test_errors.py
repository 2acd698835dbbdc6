"""The TesseraError tree: every error has its own stable code and a status that says whose
fault it is, and nothing raises the bare root (code `error`, status 500)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import tessera
from tessera import errors
from tessera.errors import TesseraError

PACKAGE = Path(tessera.__file__).parent


def _declared_errors() -> list[type[TesseraError]]:
    """Every TesseraError subclass declared at the top of a module of the package (classes
    made on the fly, such as a remote client's, are not part of the tree)."""
    for module in pkgutil.walk_packages([str(PACKAGE)], prefix="tessera."):
        importlib.import_module(module.name)
    found: list[type[TesseraError]] = []
    waiting: list[type[TesseraError]] = [TesseraError]
    while waiting:
        current = waiting.pop()
        for child in current.__subclasses__():
            waiting.append(child)
            if getattr(sys.modules[child.__module__], child.__qualname__, None) is child:
                found.append(child)
    return found


def _branch_parent(error: type[TesseraError]) -> type[TesseraError]:
    parent = next(base for base in error.__mro__[1:] if issubclass(base, TesseraError))
    return parent


def test_every_error_has_a_code_of_its_own() -> None:
    declared = _declared_errors()
    codes = [TesseraError.code, *(error.code for error in declared)]
    repeated = sorted({code for code in codes if codes.count(code) > 1})
    assert not repeated, f"codes used by more than one error class: {repeated}"
    assert all(error.__dict__.get("code") for error in declared), "a class inherits its code"


def test_every_status_is_an_error_status_of_its_branch() -> None:
    for error in _declared_errors():
        assert 400 <= error.status < 600, error
        parent = _branch_parent(error)
        if parent is not TesseraError:  # a subclass keeps its branch's kind of fault
            assert error.status // 100 == parent.status // 100, (error, parent)


@pytest.mark.parametrize(
    "error", [errors.InvalidField, errors.InvalidMapping, errors.InvalidImportFile]
)
def test_request_errors_sit_under_invalid_request(error: type[TesseraError]) -> None:
    assert issubclass(error, errors.InvalidRequest) and error.status == 400


def test_invalid_field_is_not_an_event_contract_error() -> None:
    assert not issubclass(errors.InvalidField, errors.InvalidMessage)
    assert issubclass(errors.InvalidMessageField, errors.InvalidMessage)


def _builds_the_root(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr == "TesseraError"
    return isinstance(node, ast.Name) and node.id == "TesseraError"


def test_no_code_raises_or_builds_the_bare_root() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            built = (
                isinstance(node, ast.Raise) and node.exc is not None and _builds_the_root(node.exc)
            ) or (isinstance(node, ast.Call) and _builds_the_root(node))
            if built:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, f"the bare TesseraError is raised or built at {offenders}"
