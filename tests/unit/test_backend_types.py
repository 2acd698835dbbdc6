"""Every use case the CLI reaches through the Backend answers a typed model, never a
bare dict: a method that returned `dict[str, Any]` (or Any) fails here."""

from __future__ import annotations

import inspect
import types
import typing

from tessera import backend
from tessera.results import Result


def _typed(annotation: object) -> bool:
    """A Result, a list of Results, or a union of Results."""
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return _typed(item)
    if origin in (typing.Union, types.UnionType):
        return all(_typed(arm) for arm in typing.get_args(annotation))
    return inspect.isclass(annotation) and issubclass(annotation, Result)


def test_every_backend_method_returns_a_model() -> None:
    methods = [
        name
        for name, member in inspect.getmembers(backend.Backend, inspect.isfunction)
        if not name.startswith("_") and name != "close"
    ]
    assert len(methods) >= 45
    untyped = {
        name: hints["return"]
        for name in methods
        if not _typed((hints := typing.get_type_hints(getattr(backend.Backend, name)))["return"])
    }
    assert untyped == {}


def test_both_backends_keep_the_protocol_s_return_types() -> None:
    for implementation in (backend.LocalBackend, backend.RemoteBackend):
        for name, member in inspect.getmembers(backend.Backend, inspect.isfunction):
            if name.startswith("_"):
                continue
            wanted = typing.get_type_hints(member)["return"]
            got = typing.get_type_hints(getattr(implementation, name))["return"]
            assert got == wanted, f"{implementation.__name__}.{name}"


def test_the_check_catches_a_bare_dict() -> None:
    assert not _typed(dict[str, typing.Any])
    assert not _typed(list[dict[str, typing.Any]])
    assert not _typed(typing.Any)
