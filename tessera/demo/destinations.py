"""The demo's destinations, created through the admin API before its events arrive:

- `demo-lake`, a `files` destination writing JSON lines into DATA_DIR/demo/lake, rolled
  every minute, with its manifest (what a warehouse loader would read);
- `demo-webhook`, a webhook to the local example receiver (`python -m
  tessera.demo.webhook`, port 8001), created disabled: start the receiver, then `tessera
  destinations enable demo-webhook`. Its signing secret is kept in
  DATA_DIR/demo/webhook-secret (0600) for the receiver to check signatures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

WEBHOOK_PORT = 8001
SECRET_FILE = "webhook-secret"


def create(admin: httpx.Client, folder: Path) -> dict[str, Any]:
    """Create both (a second run keeps those already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    lake_dir = str((folder / "lake").resolve())  # the server may run from another folder
    lake: dict[str, Any] = {"name": "demo-lake", "kind": "files", "purpose": "analytics",
            "options": {"directory": lake_dir, "roll_seconds": 60}}  # fmt: skip
    hook: dict[str, Any] = {"name": "demo-webhook", "kind": "webhook", "purpose": "email",
            "options": {"url": f"http://127.0.0.1:{WEBHOOK_PORT}/hook",
                        "event_names": ["Order Completed", "Product Added"]}}  # fmt: skip
    created: dict[str, Any] = {}
    for body in (lake, hook):
        response = admin.post("/api/destinations", json=body)
        if response.status_code == 409:
            continue
        response.raise_for_status()
        created[body["name"]] = response.json()
    if "demo-webhook" in created:
        (folder / SECRET_FILE).write_text(str(created["demo-webhook"]["secret"]))
        admin.post("/api/destinations/demo-webhook/disable").raise_for_status()
    return {name: {"kind": value["kind"]} for name, value in created.items()}
