"""Catalogue files: the mapping (which column is which field) and one row → one product.

A mapping is YAML, like the event importer's (docs/catalog.md):

    format: csv                      # csv, jsonl or parquet; from the extension otherwise
    delimiter: ";"                   # CSV only; guessed from the header otherwise
    columns:                         # field: the file's column (default: the field's name)
      product_id: sku
      name: title
      category: category_path
      price: price_eur
      available: in_stock
    category_separator: "/"          # how the file writes paths; stored as 'A > B > C'
    currency: EUR                    # for rows that name none
    attributes: [colour, size]       # the columns kept as free attributes (default: all
                                     #   the columns no field reads)

Pure: `parse_mapping` checks the document, `read_product` turns one row into a `Product`
or raises `RowProblem` with the reason that goes to the reject file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from tessera.errors import InvalidMapping

FIELDS = (
    "product_id", "name", "category", "brand", "price", "currency", "available", "url",
    "image_url", "attributes",
)  # fmt: skip
FORMATS = ("csv", "jsonl", "parquet")
MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 2_000
MAX_ATTRIBUTES_BYTES = 16_384
#: how the catalogue writes a category path, whatever the file used
PATH_SEPARATOR = " > "
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TRUE = {"true", "yes", "y", "1", "t", "in stock", "in_stock", "instock", "available"}
_FALSE = {"false", "no", "n", "0", "f", "out of stock", "out_of_stock", "outofstock",
          "unavailable", "discontinued"}  # fmt: skip
_MAPPING_KEYS = {"format", "delimiter", "columns", "category_separator", "currency", "attributes"}


class RowProblem(Exception):
    """Why one row cannot be a product: the reject file's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CatalogMapping:
    """Which column holds which field, and how to read paths and currencies."""

    columns: dict[str, str] = field(default_factory=dict)
    file_format: str | None = None
    delimiter: str | None = None
    category_separator: str = ">"
    currency: str | None = None
    #: the columns kept as attributes; None: every column no field reads
    attributes: tuple[str, ...] | None = None

    def column(self, name: str) -> str:
        return self.columns.get(name, name)


@dataclass(frozen=True)
class Product:
    """One product as the catalogue keeps it."""

    product_id: str
    name: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    currency: str | None = None
    #: None when the row does not say (new products are then available)
    available: bool | None = None
    url: str | None = None
    image_url: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def load_mapping(text: str | None) -> CatalogMapping:
    """A mapping from YAML text (none: every field from the column of its name)."""
    if text is None or not text.strip():
        return CatalogMapping()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidMapping(f"the catalogue mapping is not valid YAML: {e}") from None
    except RecursionError:
        raise InvalidMapping("the catalogue mapping nests too deep to read") from None
    return parse_mapping(document)


def parse_mapping(document: Any) -> CatalogMapping:
    """Check a mapping document; errors name the key, the value and what is expected."""
    if document is None:
        return CatalogMapping()
    if not isinstance(document, dict):
        raise InvalidMapping("a catalogue mapping is a YAML mapping, e.g. `columns: {name: title}`")
    unknown = sorted(str(k) for k in document if k not in _MAPPING_KEYS)
    if unknown:
        raise InvalidMapping(
            f"unknown key(s) {', '.join(unknown)} in the catalogue mapping; expected "
            f"{', '.join(sorted(_MAPPING_KEYS))}"
        )
    columns = document.get("columns") or {}
    if not isinstance(columns, dict):
        raise InvalidMapping("columns must map fields to column names, e.g. {product_id: sku}")
    for name, column in columns.items():
        if name not in FIELDS:
            raise InvalidMapping(
                f"columns: unknown field {name!r}; expected one of {', '.join(FIELDS)}"
            )
        if not isinstance(column, str) or not column.strip():
            raise InvalidMapping(f"columns: {name} must name a column, got {column!r:.60}")
    file_format = document.get("format")
    if file_format is not None and file_format not in FORMATS:
        raise InvalidMapping(f"format {file_format!r:.40} must be one of {', '.join(FORMATS)}")
    delimiter = document.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise InvalidMapping(f"delimiter {delimiter!r:.40} must be one character, e.g. ';'")
    separator = document.get("category_separator", ">")
    if not isinstance(separator, str) or not separator.strip() or len(separator) > 5:
        raise InvalidMapping(
            f"category_separator {separator!r:.40} must be a short text such as '>' or '/'"
        )
    currency = document.get("currency")
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.match(currency)):
        raise InvalidMapping(f"currency {currency!r:.40} must be an ISO 4217 code such as EUR")
    attributes = document.get("attributes")
    if attributes is not None and (
        not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes)
    ):
        raise InvalidMapping("attributes must be a list of column names, e.g. [colour, size]")
    return CatalogMapping(
        columns={str(k): str(v).strip() for k, v in columns.items()},
        file_format=file_format,
        delimiter=delimiter,
        category_separator=separator.strip(),
        currency=currency,
        attributes=tuple(attributes) if attributes is not None else None,
    )


def check_columns(mapping: CatalogMapping, available: list[str]) -> None:
    """A file whose header lacks the product id column cannot be read at all."""
    wanted = mapping.column("product_id")
    if wanted not in available:
        raise InvalidMapping(
            f"the file has no column {wanted!r} for product_id; its columns are "
            f"{', '.join(available[:20])}; map it with `columns: {{product_id: COLUMN}}`"
        )


def read_product(mapping: CatalogMapping, row: dict[str, Any]) -> Product:
    """One row of a file → a product, or RowProblem naming the field, value and fix."""
    used = {mapping.column(name) for name in FIELDS}
    product_id = _identifier(row.get(mapping.column("product_id")))
    attributes = _attributes(row.get(mapping.column("attributes")))
    extra = (
        [c for c in row if c not in used]
        if mapping.attributes is None
        else [c for c in mapping.attributes if c in row]
    )
    for column in extra:
        value = row[column]
        if value is not None and value != "":
            attributes.setdefault(column, _plain(value))
    if len(orjson.dumps(attributes, default=str)) > MAX_ATTRIBUTES_BYTES:
        raise RowProblem(f"attributes take more than {MAX_ATTRIBUTES_BYTES:,} bytes as JSON")
    return Product(
        product_id=product_id,
        name=_text(row.get(mapping.column("name")), "name"),
        category=category_path(row.get(mapping.column("category")), mapping.category_separator),
        brand=_text(row.get(mapping.column("brand")), "brand"),
        price=_price(row.get(mapping.column("price"))),
        currency=_currency(row.get(mapping.column("currency"))) or mapping.currency,
        available=_available(row.get(mapping.column("available"))),
        url=_url(row.get(mapping.column("url")), "url"),
        image_url=_url(row.get(mapping.column("image_url")), "image_url"),
        attributes=attributes,
    )


def category_path(raw: Any, separator: str = ">") -> str | None:
    """'Sport/Running/Shoes' (separator '/') or ' Sport >Running> Shoes' → 'Sport > Running >
    Shoes'. A list of levels is a path too."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, list):
        parts = [str(part).strip() for part in raw]
    elif isinstance(raw, str):
        parts = [part.strip() for part in raw.split(separator)]
    else:
        raise RowProblem(f"category {raw!r:.60} must be a path such as 'Sport > Running'")
    parts = [part for part in parts if part]
    if not parts:
        return None
    path = PATH_SEPARATOR.join(parts)
    if len(path) > MAX_TEXT_CHARS:
        raise RowProblem(f"category is {len(path):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return path


def _identifier(raw: Any) -> str:
    if isinstance(raw, bool) or raw is None:
        raise RowProblem("product_id is missing; every product needs one")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, str | int):
        raise RowProblem(f"product_id {raw!r:.60} must be text or a whole number")
    text = str(raw).strip()
    if not text:
        raise RowProblem("product_id is empty; every product needs one")
    if len(text) > MAX_ID_CHARS:
        raise RowProblem(f"product_id is {len(text):,} characters; the limit is {MAX_ID_CHARS}")
    if any(ord(c) < 32 for c in text):
        raise RowProblem(f"product_id {text!r:.60} holds control characters")
    return text


def _text(raw: Any, name: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, dict | list):
        raise RowProblem(f"{name} {raw!r:.60} must be text")
    text = str(raw).strip()
    if len(text) > MAX_TEXT_CHARS:
        raise RowProblem(f"{name} is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return text or None


def _price(raw: Any) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise RowProblem(f"price {raw!r} must be a number such as 12.50")
    given = raw
    if isinstance(raw, str):
        text = raw.strip().replace("\u00a0", "").replace(" ", "")
        if re.fullmatch(r"-?\d+,\d{1,2}", text):  # 12,50: a decimal comma
            text = text.replace(",", ".")
        try:
            raw = float(text)
        except ValueError:
            raise RowProblem(f"price {raw!r:.60} must be a number such as 12.50") from None
    if not isinstance(raw, int | float):
        raise RowProblem(f"price {raw!r:.60} must be a number such as 12.50")
    price = float(raw)
    if not math.isfinite(price) or price < 0 or price > 1e12:
        raise RowProblem(f"price {given!r:.60} must be a number from 0 to 1e12")
    return price


def _currency(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    text = str(raw).strip().upper()
    if not _CURRENCY.match(text):
        raise RowProblem(f"currency {raw!r:.60} must be an ISO 4217 code such as EUR")
    return text


def _available(raw: Any) -> bool | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowProblem(f"available {raw!r:.60} must be true/false, yes/no or in stock/out of stock")


def _url(raw: Any, name: str) -> str | None:
    text = _text(raw, name)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RowProblem(f"{name} {text!r:.80} must be an http(s) address")
    return text


def _attributes(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    found = raw
    if isinstance(raw, str):
        try:
            found = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RowProblem(f"attributes {raw!r:.60} must be a JSON object") from None
    if not isinstance(found, dict):
        raise RowProblem(f"attributes {raw!r:.60} must be a JSON object")
    return {str(k): _plain(v) for k, v in found.items()}


def _plain(value: Any) -> Any:
    """A value JSON can hold (Parquet gives dates and decimals)."""
    if value is None or isinstance(value, str | bool | int | dict | list):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
