"""The demo's offers and a publishable key, created through the admin API once the demo's
events are in (an offer's condition may only name events the store has seen):

- `travel-getaway`: people who looked at travel goods in the last 90 days;
- `running-kit`: people who viewed running products at least twice, shown at most 3 times a
  day;
- `come-back`: e-mail only, customers who ordered before but not in the last 60 days;
- `welcome`: everyone else (the default answer, for unknown visitors too).

The publishable key (source `web-shop`) is written to DATA_DIR/demo/publishable-key, for
the README's web-page snippet and `curl`; it reads decisions, nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

KEY_FILE = "publishable-key"
OFFERS: list[dict[str, Any]] = [
    {"name": "travel-getaway", "title": "Spring getaways: 15% off cabin suitcases",
     "content": {"coupon": "TRAVEL15", "image": "/img/travel.jpg"}, "priority": 10,
     "condition": 'did "Product Viewed" where properties.category = "travel" in last 90 days'},
    {"name": "running-kit", "title": "Free energy gels with any trail shoes",
     "content": {"coupon": "RUN-GELS"}, "priority": 8, "cap_per_day": 3,
     "condition": 'count(event "Product Viewed" where properties.category = "running") >= 2'},
    {"name": "come-back", "title": "We miss you: 10 EUR off your next order",
     "content": {"coupon": "BACK10"}, "priority": 6, "channel": "email",
     "condition": 'did "Order Completed" and not did "Order Completed" in last 60 days'},
    {"name": "welcome", "title": "Free delivery on your first order",
     "content": {"coupon": "WELCOME"}, "priority": 1},
]  # fmt: skip


def create(admin: httpx.Client, folder: Path) -> dict[str, Any]:
    """Create the offers (a second run keeps those already there) and a publishable key
    (only when none is on file)."""
    created = []
    for body in OFFERS:
        response = admin.post("/api/offers", json=body)
        if response.status_code == 409:
            continue
        response.raise_for_status()
        created.append(body["name"])
    path = folder / KEY_FILE
    if not path.exists():
        answer = admin.post("/api/personalize/keys", json={"source": "web-shop"})
        answer.raise_for_status()
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(str(answer.json()["key"]) + "\n")
    return {"offers": created, "publishable_key_file": str(path)}
