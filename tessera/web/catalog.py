"""The console's Catalogue page: the products, searched by words, a category or a brand,
and one product with its fields and attributes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from tessera.catalog import products
from tessera.dependencies import RuntimeDep
from tessera.errors import TesseraError
from tessera.paging import Page
from tessera.web import session
from tessera.web.rendering import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(session.require_session)])
PAGE = 50


@router.get("/catalogue")
def catalogue_page(
    request: Request,
    runtime: RuntimeDep,
    q: str = "",
    category: str = "",
    brand: str = "",
    cursor: str | None = None,
) -> Response:
    found: Page | None = None
    error = None
    try:
        found = products.products_page(
            runtime.store, search=q, category=category, brand=brand, limit=PAGE, cursor=cursor
        )
    except TesseraError as e:
        error = e
    context = {
        "q": q,
        "category": category,
        "brand": brand,
        "results": found,
        "error": error,
        "first": not cursor,
        "summary": products.summary(runtime.store),
    }
    return render(request, "catalogue.html", context, status=400 if error else 200)


@router.get("/catalogue/{product_id}")
def product_page(request: Request, runtime: RuntimeDep, product_id: str) -> Response:
    product = products.show(runtime.store, product_id)
    return render(request, "product.html", {"product": product})


@router.post("/catalogue/{product_id}/retire")
def retire_product(product_id: str, runtime: RuntimeDep) -> Response:
    products.retire(runtime.store, product_id)
    return RedirectResponse(f"/catalogue/{product_id}", status_code=303)


@router.post("/catalogue/{product_id}/restore")
def restore_product(product_id: str, runtime: RuntimeDep) -> Response:
    products.restore(runtime.store, product_id)
    return RedirectResponse(f"/catalogue/{product_id}", status_code=303)
