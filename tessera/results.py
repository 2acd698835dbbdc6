"""The typed answers of the use cases: one convention for every edge.

A use case returns a `Result` (a frozen pydantic model), or a list of them, or a
`tessera.paging.Page`. The API declares it as the route's `response_model` (so
/openapi.json documents the real shape) and serialises it with `wire`; the console's
templates read its attributes; the CLI prints its attributes as a table, or `wire` as
JSON with `--json`; the CLI's remote backend parses the server's JSON back into the same
model with a pydantic `TypeAdapter`. So mypy checks every edge against one definition.

`wire` dumps in Python mode and lets orjson write the JSON: times already held as text
(`iso_utc`) stay as they are, and the bytes are the same as the dicts answered before
the models existed.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict


class Result(BaseModel):
    """A use case's answer. Frozen; an unknown field is an error when parsing, so a
    server and a client that disagree on a shape fail loudly instead of dropping data."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Deleted(Result):
    """The name of what was deleted."""

    deleted: str


def plain(value: object) -> Any:
    """orjson's `default`: a result as plain values (orjson writes lists and dicts of
    results itself and calls this for each result it meets)."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def shown(value: Any) -> str:
    """A value as a table cell shows it (the CLI's tables, the console's): a list or an
    object as compact JSON, never Python's repr (an itemised trait's counts); anything
    else as its text."""
    if isinstance(value, dict | list):
        return wire(value).decode()
    return str(value)


def wire(value: Any, option: int = 0) -> bytes:
    """A result, or a list or dict of results, as the JSON the API answers."""
    return orjson.dumps(value, default=plain, option=option | orjson.OPT_NON_STR_KEYS)
