"""Where an event names its product: the one place that reads a product id.

Segment's e-commerce spec puts it in `properties.product_id` (and in each item of
`properties.products`); other senders use `sku`, `id` or a nested `item.sku`. The setting
`TESSERA_PRODUCT_ID_PROPERTIES` lists the property paths tried in order, the first present
wins, in the event's properties and in each item of its `products` array alike.
Recommendations, product conditions in segments, itemised computed traits, loyalty and the
call-centre screen all read the id through `ProductKeys`: in Python (`of`) or as a SQL
tree (`sql_of`), the same paths in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from tessera.settings import PRODUCT_PATH, Settings

DEFAULT_PATHS = ("product_id",)


def check_path(path: str) -> str:
    """A product id property path as the setting takes it: names joined by dots."""
    # Inlined as a constant JSON path in SQL (a constant path is parsed once per query, a
    # bound one on every row): only names joined by dots may be one.
    if not PRODUCT_PATH.match(path):
        raise ValueError(
            f"product id property {path!r} must be a property name or a dotted path of "
            "names made of letters, digits and '_' (e.g. product_id, sku, item.sku)"
        )
    return path


@dataclass(frozen=True)
class ProductKeys:
    """The property paths that name a product, tried in order."""

    paths: tuple[str, ...] = DEFAULT_PATHS

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("at least one product id property is needed (e.g. product_id)")
        for path in self.paths:
            check_path(path)

    @classmethod
    def of_paths(cls, paths: Iterable[str]) -> ProductKeys:
        return cls(tuple(paths))

    @classmethod
    def of_settings(cls, settings: Settings) -> ProductKeys:
        """The paths TESSERA_PRODUCT_ID_PROPERTIES lists."""
        return cls(tuple(settings.product_id_properties))

    def of(self, properties: Mapping[str, Any]) -> str | None:
        """The product id an event's properties (or one item of `products`) give: the
        first path present, as text (a number's text; a bool, list or object is no id)."""
        for path in self.paths:
            value: Any = properties
            for name in path.split("."):
                value = value.get(name) if isinstance(value, Mapping) else None
            # A bool, object or array is no id (SQL would read its JSON text: ids are
            # never those in practice, and the two readers agree on every id that is).
            if isinstance(value, bool) or value is None or value == "":
                continue
            if isinstance(value, str | int | float):
                return str(value)
        return None

    def sql_of(self, json: exp.Expr) -> exp.Expr:
        """`VARCHAR`: the same id read from a JSON value in SQL (NULL when no path gives
        one): `coalesce` of each path's text, in order."""
        found = [
            exp.func("nullif", _extracted(json.copy(), path), exp.Literal.string(""))
            for path in self.paths
        ]
        if len(found) == 1:
            return found[0]
        return exp.Coalesce(this=found[0], expressions=found[1:])


def _extracted(json: exp.Expr, path: str) -> exp.Expr:
    pointer = "$." + ".".join(f'"{name}"' for name in path.split("."))
    return exp.func("json_extract_string", json, exp.Literal.string(pointer), dialect="duckdb")
