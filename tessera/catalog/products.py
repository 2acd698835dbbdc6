"""The product catalogue's use cases: import a file, list (paged, searched), show, retire.

An import upserts: a product already known is updated (a retired one stays retired: it
left the shop on purpose, a feed that still lists it does not bring it back; `restore`
does). Rows that cannot be products go to a reject file with their line and reason, as
event imports do, and never stop the others. Retired products stay in the table, so the
orders and views that name them still join to a category and a brand.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
from pydantic import Field

from tessera.catalog.rows import (
    CatalogMapping,
    Product,
    RowProblem,
    check_columns,
    read_product,
)
from tessera.errors import InvalidImportFile, NotFound, TesseraError
from tessera.events import importer
from tessera.events import rejects as reject_files
from tessera.events.timestamps import iso_utc, utc_now
from tessera.paging import Page, check_limit, decode_cursor, encode_cursor
from tessera.results import Result
from tessera.store import Store

PAGE_MAX = 500
_CHUNK = 5_000
#: what a re-import updates: a field the row leaves empty keeps the value it had (a feed
#: of prices alone does not erase categories)
_UPDATED = (
    "name", "category", "brand", "price", "currency", "available", "url", "image_url",
    "attributes",
)  # fmt: skip
_COLUMNS = (
    "product_id, name, category, brand, price, currency, available, retired_at, url, "
    "image_url, attributes, updated_at"
)


class CatalogProduct(Result):
    """One product of the catalogue as the edges show it."""

    product_id: str
    name: str | None
    category: str | None = Field(description="A path: 'Sport > Running > Shoes'")
    brand: str | None
    price: float | None
    currency: str | None
    available: bool
    retired: bool
    retired_at: str | None
    url: str | None
    image_url: str | None
    attributes: dict[str, Any]
    updated_at: str | None


class CatalogImported(Result):
    """What a catalogue import did: rows read, products created and updated, rows refused
    (listed with their line and reason in the reject file)."""

    import_id: str
    file: str
    rows: int
    created: int
    updated: int
    rejected: int
    reject_file: str | None
    seconds: float


class CatalogSummary(Result):
    """The catalogue at a glance: how many products, on sale, retired; the categories and
    brands with their product counts (the most common first)."""

    products: int
    available: int
    retired: int
    categories: list[tuple[str, int]]
    brands: list[tuple[str, int]]


def import_file(
    store: Store,
    path: Path,
    mapping: CatalogMapping,
    rejects_dir: Path,
    *,
    file_name: str | None = None,
    now: datetime | None = None,
) -> CatalogImported:
    """Upsert the products of a CSV, JSON lines or Parquet file.

    Raises:
        InvalidImportFile: the file cannot be read at all (no such file, unknown format,
            an empty CSV).
        InvalidMapping: the header lacks the product id column.
    """
    started = time.perf_counter()
    name = Path(file_name or path.name).name
    file_format = mapping.file_format or importer.FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise InvalidImportFile(
            f"cannot tell the format of {name!r} from its extension; name it .csv, .jsonl or "
            ".parquet, or set `format:` in the mapping"
        )
    rows = importer.read_rows(path, file_format, name, mapping.delimiter)
    header = next(rows)
    if header is not None:
        check_columns(mapping, header)
    import_id = "cat_" + secrets.token_hex(6)
    moment = (now or utc_now()).replace(tzinfo=None)
    store.execute(
        "INSERT INTO catalog_imports (id, file_name, started_at) VALUES (?, ?, ?)",
        [import_id, name, moment],
    )
    counts = {"rows": 0, "created": 0, "updated": 0}
    refused: list[tuple[int, str, str]] = []
    for chunk in _chunks(rows, mapping, refused, counts):
        created, updated = _upsert(store, chunk, moment)
        counts["created"] += created
        counts["updated"] += updated
    reject_file = reject_files.write(
        rejects_dir, f"{import_id}-{Path(name).stem}.rejects.csv", refused
    )
    store.execute(
        "UPDATE catalog_imports SET finished_at = ?, rows = ?, created = ?, updated = ?, "
        "rejected = ?, reject_file = ? WHERE id = ?",
        [utc_now(), counts["rows"], counts["created"], counts["updated"], len(refused),
         reject_file, import_id],
    )  # fmt: skip
    return CatalogImported(
        import_id=import_id,
        file=name,
        rows=counts["rows"],
        created=counts["created"],
        updated=counts["updated"],
        rejected=len(refused),
        reject_file=reject_file,
        seconds=round(time.perf_counter() - started, 3),
    )


def _chunks(
    rows: Iterator[Any],
    mapping: CatalogMapping,
    refused: list[tuple[int, str, str]],
    counts: dict[str, int],
) -> Iterator[dict[str, Product]]:
    """Products in chunks (the last row of an id within a chunk wins, as a later row of
    the file updates an earlier one); refused rows collected with their reason."""
    chunk: dict[str, Product] = {}
    for line, row in rows:
        counts["rows"] += 1
        try:
            if isinstance(row, TesseraError):
                raise RowProblem(row.message)
            product = read_product(mapping, row)
        except RowProblem as e:
            refused.append((line, e.reason, _shown(row)))
            continue
        except Exception as e:  # a defect of ours must not stop the rows after this one
            refused.append(
                (line, f"the row could not be read ({type(e).__name__}); please report it",
                 _shown(row))
            )  # fmt: skip
            continue
        chunk.pop(product.product_id, None)
        chunk[product.product_id] = product
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = {}
    if chunk:
        yield chunk


def _shown(row: Any) -> str:
    if isinstance(row, TesseraError):
        return ""
    return orjson.dumps(row, default=str).decode()[:2_000]


def _upsert(store: Store, chunk: dict[str, Product], moment: datetime) -> tuple[int, int]:
    """Insert or update a chunk of products in one transaction; (created, updated)."""
    products = list(chunk.values())
    table = pa.table(
        {
            "product_id": [p.product_id for p in products],
            "name": [p.name for p in products],
            "category": [p.category for p in products],
            "brand": [p.brand for p in products],
            "price": pa.array([p.price for p in products], pa.float64()),
            "currency": [p.currency for p in products],
            "available": pa.array([p.available for p in products], pa.bool_()),  # None: not said
            "url": [p.url for p in products],
            "image_url": [p.image_url for p in products],
            "attributes": [
                orjson.dumps(p.attributes).decode() if p.attributes else None for p in products
            ],
        }
    )
    with store.transaction() as batch:
        batch.execute(
            "CREATE TEMP TABLE IF NOT EXISTS catalog_incoming AS "
            "SELECT * EXCLUDE (retired_at, updated_at) FROM products LIMIT 0"
        )
        batch.execute("DELETE FROM catalog_incoming")
        batch.insert_arrow("catalog_incoming", table)
        found = batch.fetch_one(
            "SELECT count(*) FROM products WHERE product_id IN "
            "(SELECT product_id FROM catalog_incoming)"
        )
        updated = int(found[0]) if found else 0
        batch.execute(
            "INSERT INTO products (product_id, name, category, brand, price, currency, "
            "available, url, image_url, attributes, updated_at) "
            "SELECT product_id, name, category, brand, price, currency, "
            "coalesce(available, TRUE), url, image_url, attributes, ? FROM catalog_incoming "
            "ON CONFLICT (product_id) DO UPDATE SET "
            + ", ".join(f"{c} = coalesce(excluded.{c}, products.{c})" for c in _UPDATED)
            + ", updated_at = excluded.updated_at",
            [moment],
        )
        batch.execute("DELETE FROM catalog_incoming")
    return len(products) - updated, updated


def _product(row: tuple[Any, ...]) -> CatalogProduct:
    (product_id, name, category, brand, price, currency, available, retired_at, url,
     image_url, attributes, updated_at) = row  # fmt: skip
    return CatalogProduct(
        product_id=product_id,
        name=name,
        category=category,
        brand=brand,
        price=price,
        currency=currency,
        available=bool(available),
        retired=retired_at is not None,
        retired_at=iso_utc(retired_at),
        url=url,
        image_url=image_url,
        attributes=orjson.loads(attributes) if attributes else {},
        updated_at=iso_utc(updated_at),
    )


def show(store: Store, product_id: str) -> CatalogProduct:
    """One product (retired ones too); NotFound names the id."""
    row = store.fetch_one(f"SELECT {_COLUMNS} FROM products WHERE product_id = ?", [product_id])
    if row is None:
        raise NotFound(f"no product {product_id!r} in the catalogue")
    return _product(row)


def products_page(
    store: Store,
    *,
    search: str | None = None,
    category: str | None = None,
    brand: str | None = None,
    retired: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """A page of products in product_id order (keyset paging), with the total.

    `search` finds the words in the id, the name, the category or the brand (any case);
    `category` keeps a category and everything under it ('Sport' keeps 'Sport > Running');
    `retired` true keeps only retired products, false only the others, None both."""
    check_limit(limit, PAGE_MAX)
    after = decode_cursor("products", cursor, str)
    conditions: list[str] = []
    parameters: dict[str, Any] = {}
    if search is not None and search.strip():
        for index, word in enumerate(search.split()[:10]):
            conditions.append(
                f"(contains(lower(product_id), $w{index}) OR contains(lower(coalesce(name, "
                f"'')), $w{index}) OR contains(lower(coalesce(category, '')), $w{index}) OR "
                f"contains(lower(coalesce(brand, '')), $w{index}))"
            )
            parameters[f"w{index}"] = word.lower()
    if category is not None and category.strip():
        conditions.append("(category = $category OR starts_with(category, $under))")
        parameters["category"] = category.strip()
        parameters["under"] = category.strip() + " > "
    if brand is not None and brand.strip():
        conditions.append("lower(brand) = $brand")
        parameters["brand"] = brand.strip().lower()
    if retired is not None:
        conditions.append("retired_at IS NOT NULL" if retired else "retired_at IS NULL")
    where = " AND ".join(conditions) or "TRUE"
    total_row = store.fetch_one(f"SELECT count(*) FROM products WHERE {where}", parameters)
    total = int(total_row[0]) if total_row else 0
    keyset = " AND product_id > $after" if after is not None else ""
    rows = store.fetch_all(
        f"SELECT {_COLUMNS} FROM products WHERE {where}{keyset} ORDER BY product_id LIMIT $fetch",
        {**parameters, **({"after": after} if after is not None else {}), "fetch": limit + 1},
    )
    more = len(rows) > limit
    items = [_product(row).model_dump() for row in rows[:limit]]
    next_cursor = encode_cursor("products", items[-1]["product_id"]) if more and items else None
    return Page(items=items, total=total, limit=limit, next_cursor=next_cursor)


def retire(store: Store, product_id: str, now: datetime | None = None) -> CatalogProduct:
    """Mark a product retired (kept, so past events still join to it; never recommended
    or offered). Retiring a retired product keeps its first retirement time."""
    show(store, product_id)
    store.execute(
        "UPDATE products SET retired_at = coalesce(retired_at, ?) WHERE product_id = ?",
        [(now or utc_now()).replace(tzinfo=None), product_id],
    )
    return show(store, product_id)


def restore(store: Store, product_id: str) -> CatalogProduct:
    """Put a retired product back on the catalogue."""
    show(store, product_id)
    store.execute("UPDATE products SET retired_at = NULL WHERE product_id = ?", [product_id])
    return show(store, product_id)


def summary(store: Store, top: int = 20) -> CatalogSummary:
    """Counts, and the top-level categories and the brands with their product counts."""
    row = store.fetch_one(
        "SELECT count(*), count(*) FILTER (WHERE available AND retired_at IS NULL), "
        "count(*) FILTER (WHERE retired_at IS NOT NULL) FROM products"
    )
    products, available, retired = (int(v) for v in row) if row else (0, 0, 0)
    categories = store.fetch_all(
        "SELECT split_part(category, ' > ', 1) AS top, count(*) AS n FROM products "
        "WHERE category IS NOT NULL GROUP BY top ORDER BY n DESC, top LIMIT ?",
        [top],
    )
    brands = store.fetch_all(
        "SELECT brand, count(*) AS n FROM products WHERE brand IS NOT NULL "
        "GROUP BY brand ORDER BY n DESC, brand LIMIT ?",
        [top],
    )
    return CatalogSummary(
        products=products,
        available=available,
        retired=retired,
        categories=[(str(c), int(n)) for c, n in categories],
        brands=[(str(b), int(n)) for b, n in brands],
    )


def upload(
    store: Store,
    data: BinaryIO,
    file_name: str,
    mapping: CatalogMapping,
    data_dir: Path,
    rejects_dir: Path,
) -> CatalogImported:
    """An uploaded catalogue file (the API and the console): saved under DATA_DIR/uploads,
    imported, then removed."""
    name = Path(file_name).name or "catalog.csv"
    saved = importer.save_upload(data, name, data_dir)
    try:
        return import_file(store, saved, mapping, rejects_dir, file_name=name)
    finally:
        saved.unlink(missing_ok=True)
