"""The product catalogue through a real `tessera serve` (issue 14): upload, list with
paging and search, show, retire and restore over /api/catalog; the CLI through the running
server; a segment with a product condition; the errors a user can make."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_cli import as_json, tessera
from tests.conftest import LiveServer, basic_auth, start_server

pytestmark = pytest.mark.slow

FEED = """sku;title;path;brand;price;in_stock;colour
shoe-1;Trail shoes;Sport/Running/Shoes;Acme;129,00;yes;red
sock-2;Socks;Sport/Running/Socks;Zed;12.5;yes;
lamp-3;Lamp;Home/Lighting;Acme;45;no;white
;Nameless;Home;;1;;
pot-4;Pot;Home/Garden;Terra;free;;
"""
MAPPING = """columns: {product_id: sku, name: title, category: path, available: in_stock}
category_separator: /
currency: EUR
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("catalog") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def imported(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    response = httpx.post(
        f"{live.url}/api/catalog/import",
        files={"file": ("feed.csv", FEED.encode())},
        data={"mapping": MAPPING},
        headers=live.admin,
    )
    assert response.status_code == 200, response.text
    found: dict[str, object] = response.json()
    return found


def test_an_upload_creates_products_and_lists_the_rejected_rows(
    imported: dict[str, object],
) -> None:
    assert {k: imported[k] for k in ("rows", "created", "updated", "rejected")} == {
        "rows": 5, "created": 3, "updated": 0, "rejected": 2,
    }  # fmt: skip
    assert str(imported["reject_file"]).endswith("feed.rejects.csv")
    rejected = Path(str(imported["reject_file"])).read_text()
    assert "product_id is empty" in rejected and "price 'free' must be a number" in rejected


def test_products_are_listed_paged_searched_shown_retired_and_restored(
    live: LiveServer, imported: dict[str, object]
) -> None:
    api = f"{live.url}/api/catalog"
    first = httpx.get(f"{api}/products", params={"limit": 2}, headers=live.admin).json()
    assert [p["product_id"] for p in first["items"]] == ["lamp-3", "shoe-1"]
    assert first["total"] == 3 and first["next_cursor"]
    rest = httpx.get(
        f"{api}/products", params={"limit": 2, "cursor": first["next_cursor"]}, headers=live.admin
    ).json()
    assert [p["product_id"] for p in rest["items"]] == ["sock-2"] and rest["next_cursor"] is None
    found = httpx.get(f"{api}/products", params={"search": "acme"}, headers=live.admin).json()
    assert [p["product_id"] for p in found["items"]] == ["lamp-3", "shoe-1"]
    sport = httpx.get(f"{api}/products", params={"category": "Sport"}, headers=live.admin).json()
    assert sport["total"] == 2
    shoe = httpx.get(f"{api}/products/shoe-1", headers=live.admin).json()
    assert shoe["category"] == "Sport > Running > Shoes" and shoe["price"] == 129.0
    assert shoe["attributes"] == {"colour": "red"} and shoe["brand"] == "Acme"
    retired = httpx.post(f"{api}/products/lamp-3/retire", headers=live.admin).json()
    assert retired["retired"] is True
    listed = httpx.get(f"{api}/products", params={"retired": "true"}, headers=live.admin).json()
    assert [p["product_id"] for p in listed["items"]] == ["lamp-3"]
    restored = httpx.post(f"{api}/products/lamp-3/restore", headers=live.admin).json()
    assert restored["retired"] is False
    summary = httpx.get(api, headers=live.admin).json()
    assert summary["products"] == 3 and ["Sport", 2] in summary["categories"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/products/nope", {}, 404, "not_found"),
        ("POST", "/products/nope/retire", {}, 404, "not_found"),
        ("GET", "/products", {"params": {"limit": 0}}, 400, None),
        ("GET", "/products", {"params": {"cursor": "garbage"}}, 400, None),
        ("POST", "/import", {"files": {"file": ("feed.xlsx", b"x")}}, 400, None),
        ("POST", "/import", {"files": {"file": ("feed.csv", b"name\nx\n")}}, 400, None),
        ("POST", "/import", {"files": {"file": ("f.csv", b"a\n")}, "data": {"mapping": "[1"}},
         400, None),
    ],
)  # fmt: skip
def test_mistakes_are_4xx_with_a_code_and_a_message(
    live: LiveServer,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    code: str | None,
) -> None:
    response = httpx.request(
        method,
        f"{live.url}/api/catalog{path}",
        headers=live.admin,
        **kwargs,  # type: ignore[arg-type]
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["message"]
    if code:
        assert body["code"] == code


def test_the_catalogue_needs_the_admin_token(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/api/catalog/products").status_code == 401


def test_the_cli_and_a_segment_with_a_product_condition_through_the_server(
    live: LiveServer, imported: dict[str, object], tmp_path: Path
) -> None:
    data = live.data_dir
    shown = as_json(tessera(data, "catalog", "show", "sock-2", "--json"))
    assert shown["brand"] == "Zed"
    listed = as_json(tessera(data, "catalog", "list", "--brand", "acme", "--json"))
    assert [p["product_id"] for p in listed["items"]] == ["lamp-3", "shoe-1"]
    feed = tmp_path / "more.jsonl"
    feed.write_text('{"product_id": "sock-2", "name": "Socks", "price": 11}\n{"name": "x"}\n')
    again = as_json(tessera(data, "catalog", "import", str(feed), "--json"))
    assert (again["updated"], again["rejected"]) == (1, 1)
    assert as_json(tessera(data, "catalog", "retire", "sock-2", "--json"))["retired"] is True

    key = live.create_source("shop")
    orders = [
        {"type": "track", "event": "Order Completed", "userId": user, "messageId": f"o-{user}",
         "properties": {"products": [{"product_id": product, "quantity": 1}]}}
        for user, product in (("ann", "shoe-1"), ("bob", "lamp-3"), ("cy", "sock-2"))
    ]  # fmt: skip
    posted = httpx.post(
        f"{live.url}/v1/batch",
        json={"batch": orders},
        headers={"Authorization": basic_auth(key)},
    )
    assert posted.status_code == 200, posted.text
    live.caught_up()
    query = 'did "Order Completed" where product.category starts with "Sport"'
    preview = httpx.post(
        f"{live.url}/api/segments/preview", json={"query": query}, headers=live.admin
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["size"] == 2  # ann (shoes) and cy (socks, retired since)
    wrong = httpx.post(
        f"{live.url}/api/segments/preview",
        json={"query": 'did "Order Completed" where product.colour = "red"'},
        headers=live.admin,
    )
    assert wrong.status_code == 400
    assert "unknown product field 'colour' at line 1, column 29" in wrong.json()["message"]
