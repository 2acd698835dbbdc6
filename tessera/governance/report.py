"""The access report as one readable, self-contained HTML page (to send to the person):
the same content as the JSON, escaped by Jinja2's autoescape."""

from __future__ import annotations

from pathlib import Path

import jinja2
import orjson

from tessera.governance.access import AccessReport

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
)


def render_html(report: AccessReport) -> str:
    """The report as a page a person can read (every value escaped)."""
    return _ENVIRONMENT.get_template("access.html").render(r=report, dumps=_dumps)


def _dumps(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()
