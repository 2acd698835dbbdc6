"""Load a generated company through the real collect API and the import API.

Not by writing tables: the demo exercises the same paths a customer's data takes.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from tessera.demo import catalog, destinations, mappings, showcase
from tessera.demo import offers as demo_offers
from tessera.demo.generator import SOURCES, Company

BATCH = 100
Report = Callable[[str, int, int], None]


def write_files(company: Company, folder: Path) -> dict[str, Path]:
    """The offline exports, their mappings and the ground truth, as CSV and YAML."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "crm": _csv(folder / "crm.csv", company.crm_rows),
        "shops": _csv(folder / "pos.csv", company.pos_rows),
        "call-centre": _csv(folder / "calls.csv", company.call_rows),
    }
    (folder / "crm.yml").write_text(mappings.CRM)
    (folder / "pos.yml").write_text(mappings.POS)
    (folder / "calls.yml").write_text(mappings.CALLS)
    with (folder / "truth.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "message_id", "person_id"])
        writer.writerows(company.truth)
    people = [
        {
            "person_id": p.person_id,
            "country": p.country,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "email": p.email or "",
            "phone": p.phone or "",
            "user_id": p.user_id or "",
            "loyalty_id": p.loyalty_id or "",
            "interests": "|".join(p.interests),
            "groups": "|".join(p.groups),
        }
        for p in company.people
    ]
    _csv(folder / "people.csv", people)
    return files


def load(
    company: Company,
    url: str,
    admin_token: str,
    folder: Path,
    report: Report | None = None,
    *,
    seed: int = 42,
) -> dict[str, Any]:
    """Create the sources, post the online channels, import the offline files; once the
    pipeline has processed them, the audiences side (showcase.py)."""
    admin = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=600
    )
    keys = {name: _write_key(admin, name, channel) for name, channel in SOURCES}
    created = destinations.create(admin, folder)  # before the events, so they receive them
    products = catalog.load(admin, folder)  # before the events, so product traits join
    sent = 0
    for name, messages in company.messages.items():
        sent += _post_all(url, keys[name], messages, name, report)
    files = write_files(company, folder)
    mapping_files = {"crm": "crm.yml", "shops": "pos.yml", "call-centre": "calls.yml"}
    imports = {}
    for source, path in files.items():
        if report:
            report(f"import {path.name}", 0, 1)
        with path.open("rb") as handle:
            response = admin.post(
                "/api/imports",
                files={"file": (path.name, handle)},
                data={
                    "mapping": (folder / mapping_files[source]).read_text(),
                    "source": source,
                    "wait": "true",
                },
            )
        response.raise_for_status()
        imports[source] = response.json()
        if report:
            report(f"import {path.name}", 1, 1)
    _wait_for_pipeline(admin, report)
    if report:
        report("audiences, segments, lookalike, campaign", 0, 1)
    audiences = showcase.create(admin, company, seed, datetime.now(UTC).date())
    if report:
        report("audiences, segments, lookalike, campaign", 1, 1)
    personalisation = demo_offers.create(admin, folder)  # after the events: conditions name them
    admin.close()
    return {
        "people": len(company.people),
        "http_events": sent,
        "imports": imports,
        "folder": str(folder),
        "destinations": created,
        "showcase": audiences,
        "catalogue": products,
        "personalisation": personalisation,
    }


def _wait_for_pipeline(admin: httpx.Client, report: Report | None, timeout_s: float = 600) -> None:
    """Until the pipeline has processed every event (segments and lookalikes read
    profiles)."""
    deadline = time.monotonic() + timeout_s
    first: int | None = None
    while True:
        lag = int(admin.get("/api/pipeline").raise_for_status().json()["lag_events"])
        first = lag if first is None else max(first, lag)
        if report:
            report("pipeline", first - lag, max(first, 1))
        if lag == 0 or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def _write_key(admin: httpx.Client, name: str, channel: str) -> str:
    response = admin.post("/api/sources", json={"name": name, "channel": channel})
    if response.status_code == 409:  # loaded before: take a fresh key for this run
        response = admin.post(f"/api/sources/{name}/rotate-key")
    response.raise_for_status()
    return str(response.json()["write_key"])


def _post_all(
    url: str, key: str, messages: list[dict[str, Any]], name: str, report: Report | None
) -> int:
    batches = [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
    local = threading.local()
    clients: list[httpx.Client] = []
    done = 0

    def post(batch: list[dict[str, Any]]) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, auth=(key, ""), timeout=120)
            clients.append(client)
        body = orjson.dumps({"batch": batch})
        for attempt in range(20):  # retry as the SDKs do: on 429 and 5xx, same messageIds
            response = client.post(
                "/v1/batch", content=body, headers={"Content-Type": "application/json"}
            )
            if response.status_code != 429 and response.status_code < 500:
                break
            time.sleep(min(2.0, 0.1 * 2**attempt))
        response.raise_for_status()
        return len(batch)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for count in pool.map(post, batches):
            done += count
            if report:
                report(f"post {name}", done, len(messages))
    for client in clients:
        client.close()
    return done


def _csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path
