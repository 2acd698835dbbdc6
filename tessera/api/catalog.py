"""Admin API for the product catalogue: /api/catalog. Each route calls one use case of
`tessera.catalog.products` and answers its result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from starlette.responses import Response

from tessera.api.responses import json_response
from tessera.catalog import products
from tessera.catalog.rows import load_mapping
from tessera.dependencies import CursorQuery, RuntimeDep, require_admin
from tessera.paging import Page

router = APIRouter(prefix="/api/catalog", dependencies=[Depends(require_admin)])


@router.get("", response_model=products.CatalogSummary, summary="The catalogue at a glance")
def catalog_summary(runtime: RuntimeDep) -> Response:
    return json_response(products.summary(runtime.store))


@router.post(
    "/import",
    response_model=products.CatalogImported,
    summary="Upload a catalogue (CSV, JSON lines or Parquet): products are created or updated",
)
def import_catalog(
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="The catalogue file")],
    mapping: Annotated[
        str | None, Form(description="The mapping, as YAML text (docs/catalog.md)")
    ] = None,
) -> Response:
    return json_response(
        products.upload(
            runtime.store,
            file.file,
            file.filename or "catalog.csv",
            load_mapping(mapping),
            runtime.settings.data_dir,
            runtime.settings.rejects_dir,
        )
    )


@router.get(
    "/products",
    response_model=Page,
    summary="A page of products, searched by words, a category (and under) or a brand",
)
def list_products(
    runtime: RuntimeDep,
    search: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=2000)] = None,
    brand: Annotated[str | None, Query(max_length=2000)] = None,
    retired: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=products.PAGE_MAX)] = 50,
    cursor: CursorQuery = None,
) -> Response:
    return json_response(
        products.products_page(
            runtime.store,
            search=search,
            category=category,
            brand=brand,
            retired=retired,
            limit=limit,
            cursor=cursor,
        )
    )


@router.get("/products/{product_id}", response_model=products.CatalogProduct, summary="One product")
def show_product(product_id: str, runtime: RuntimeDep) -> Response:
    return json_response(products.show(runtime.store, product_id))


@router.post(
    "/products/{product_id}/retire",
    response_model=products.CatalogProduct,
    summary="Retire a product: kept for past events, never recommended or offered",
)
def retire_product(product_id: str, runtime: RuntimeDep) -> Response:
    return json_response(products.retire(runtime.store, product_id))


@router.post(
    "/products/{product_id}/restore",
    response_model=products.CatalogProduct,
    summary="Put a retired product back",
)
def restore_product(product_id: str, runtime: RuntimeDep) -> Response:
    return json_response(products.restore(runtime.store, product_id))
