"""The demo company's product catalogue: every product its web shop and tills sell
(`generator.PRODUCTS`, ids `run-0`, `fas-3`...), with a category path, a brand, a price,
a page and an image, loaded through the real catalogue API."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx

from tessera.demo.generator import PRODUCTS
from tessera.profiles.computed import CATALOGUE_EXAMPLES

#: each demo category's path in the shop's tree and the brands it sells (in turn)
PATHS: dict[str, tuple[str, tuple[str, ...]]] = {
    "running": ("Sport > Running", ("Stride", "Acme Sport", "Kilometre")),
    "fashion": ("Fashion > Clothing", ("Maison Lin", "Urbanwear")),
    "electronics": ("Electronics > Audio & Gadgets", ("Voltia", "Sonique")),
    "home": ("Home > Kitchen & Living", ("Casa Nova", "Lumen")),
    "beauty": ("Beauty > Care", ("Eclat", "Solea")),
    "travel": ("Travel > Luggage & Accessories", ("Voyager", "Nomad Co")),
}
#: a finer level for some products, so category conditions can go deep
LEAVES = {
    "Trail shoes": "Shoes", "Sneakers": "Shoes", "Running jacket": "Jackets",
    "Denim jacket": "Jackets", "GPS watch": "Watches", "Headphones": "Headphones",
    "Cabin suitcase": "Suitcases", "Backpack": "Bags",
}  # fmt: skip
MAPPING = """\
# The demo shop's product feed: its own column names, mapped to the catalogue's fields.
columns:
  product_id: sku
  name: title
  category: category_path
  image_url: image
  available: in_stock
"""


def rows() -> list[dict[str, Any]]:
    """One row per product the demo's events name, as the shop's feed writes it."""
    found = []
    for category, items in PRODUCTS.items():
        path, brands = PATHS[category]
        for index, (name, price) in enumerate(items):
            product_id = f"{category[:3]}-{index}"
            leaf = LEAVES.get(name)
            found.append({
                "sku": product_id,
                "title": name,
                "category_path": f"{path} > {leaf}" if leaf else path,
                "brand": brands[index % len(brands)],
                "price": f"{price:.2f}",
                "currency": "EUR",
                "in_stock": "no" if index == 4 and category == "electronics" else "yes",
                "url": f"https://shop.example.com/p/{product_id}",
                "image": f"https://shop.example.com/img/{product_id}.jpg",
                "colour": ("black", "white", "blue", "red", "green")[index % 5],
            })  # fmt: skip
    return found


def write(folder: Path) -> tuple[Path, str]:
    """The feed as CSV in `folder`, and its mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalogue.csv"
    found = rows()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(found[0]))
        writer.writeheader()
        writer.writerows(found)
    (folder / "catalogue.yml").write_text(MAPPING)
    return path, MAPPING


def load(admin: httpx.Client, folder: Path) -> dict[str, Any]:
    """Import the catalogue through `POST /api/catalog/import`; its summary."""
    path, mapping = write(folder)
    with path.open("rb") as handle:
        response = admin.post(
            "/api/catalog/import",
            files={"file": (path.name, handle)},
            data={"mapping": mapping},
        )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    for trait in CATALOGUE_EXAMPLES:  # favourite category and brand, spend, last viewed
        admin.post("/api/computed-traits", json=trait.to_dict()).raise_for_status()
    return result
