"""Console benchmark: server-side render time of every page on the demo company.

    python benchmarks/console.py [--people 10000] [--repeat 20]

Loads the demo (as `tessera demo` does), defines three typical segments, starts a real
`tessera serve`, signs in and requests each page `--repeat` times. The figure is the
server's own time per page, read from the Server-Timing header the console sets (from the
session check to the rendered HTML); the round trip seen by the client is shown beside it.
Goal: every page under 300 ms server-side. Prints the table on stderr and the report as
one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit, free_port, start_server, stop
from pipeline import load_demo

TOKEN = "bench-admin-token-0123456789"
TAXONOMY = Path(__file__).resolve().parents[1] / "tests/fixtures/iab/audience-taxonomy-1.1.tsv"
SEGMENTS = {
    "fr-repeat": 'traits.country = "FR" and count(event "Order Completed" in last 90 days) >= 2',
    "lapsed-openers": 'did "Email Opened" in last 30 days and not did "Order Completed" '
    "in last 60 days",
    "big-spenders": 'sum(properties.revenue of event "Order Completed") > 300',
}


def pages(client: httpx.Client) -> dict[str, str]:
    """The pages to time, with real ids from the demo."""
    person = client.get("/api/profiles", params={"identifier": "@", "limit": 1}).json()["items"][0]
    return {
        "overview": "/",
        "sources": "/sources",
        "source + debugger": "/sources/web-shop",
        "profile search": "/profiles?q=" + quote(person["email"][:5]),
        "360° profile": "/profiles/" + quote(f"email:{person['email']}"),
        "segments": "/segments",
        "segment": "/segments/fr-repeat",
        "segment editor": "/segments/new",
        "editor check (as you type)": "POST /segments/check",
        "overlap": "/segments/overlap",
        "imports": "/imports",
        "audiences": "/audiences",
        "taxonomy browser": "/audiences/taxonomy/iab-audience?parent=206",
        "audience builder": "/audiences/new",
        "lookalike": "/audiences/lookalikes/repeat-like",
    }


def measure(client: httpx.Client, path: str, repeat: int) -> dict[str, float]:
    """GET a page `repeat` times; `POST path` posts the editor's text (its live check)."""
    server, client_side = [], []
    method, _, path = path.rpartition(" ")
    for _ in range(repeat):
        started = time.perf_counter()
        if method == "POST":
            answer = client.post(path, data={"query": SEGMENTS["fr-repeat"]})
        else:
            answer = client.get(path)
        client_side.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        timing = answer.headers["server-timing"]  # "app;dur=12.3"
        server.append(float(timing.split("dur=")[1]))
    server.sort()
    return {
        "server_p50_ms": round(statistics.median(server), 1),
        "server_p95_ms": round(server[int(0.95 * (len(server) - 1))], 1),
        "server_max_ms": round(server[-1], 1),
        "round_trip_p50_ms": round(statistics.median(client_side), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tessera-console-") as tmp:
        data_dir = Path(tmp) / "data"
        load_demo(data_dir, args.people)
        port = free_port()
        server = start_server(data_dir, port, {"TESSERA_ADMIN_TOKEN": TOKEN})
        try:
            base = f"http://127.0.0.1:{port}"
            admin = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=admin, timeout=120) as api:
                api.post("/api/pipeline/process").raise_for_status()
                for name, query in SEGMENTS.items():
                    api.post("/api/segments", json={"name": name, "query": query})
                with TAXONOMY.open("rb") as handle:
                    api.post("/api/audiences/taxonomies", files={"file": (TAXONOMY.name, handle)})
                api.post(
                    "/api/audiences/lookalikes",
                    json={"name": "repeat-like", "seed": "fr-repeat", "reach": 1000},
                ).raise_for_status()
                targets = pages(api)
            with httpx.Client(base_url=base, timeout=60) as browser:
                signed = browser.post("/sign-in", data={"token": TOKEN})
                assert signed.status_code == 303, f"sign-in failed: {signed.status_code}"
                rows = [{"page": name, "path": path, **measure(browser, path, args.repeat)}
                        for name, path in targets.items()]  # fmt: skip
        finally:
            stop(server)
    table = Table(
        f"console: {args.people:,}-person demo, {args.repeat} requests per page",
        ["page", "server p50 ms", "server p95 ms", "server max ms", "round trip p50 ms"],
    )
    for row in rows:
        table.add(row["page"], row["server_p50_ms"], row["server_p95_ms"], row["server_max_ms"],
                  row["round_trip_p50_ms"])  # fmt: skip
    slowest = max(rows, key=lambda row: row["server_p95_ms"])
    note = f"slowest (p95): {slowest['page']} at {slowest['server_p95_ms']} ms; goal < 300 ms"
    emit({"people": args.people, "repeat": args.repeat, "pages": rows}, table, notes=[note])


if __name__ == "__main__":
    main()
