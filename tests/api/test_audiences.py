"""Audience exports over HTTP and through the CLI (which talks to the running server)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from tessera.audiences import platforms
from tests.api.test_cli import tessera
from tests.conftest import LiveServer, basic_auth


def test_export_over_http_and_the_cli(server: LiveServer, tmp_path: Path) -> None:
    key = server.create_source("export-web", "web")
    batch = [
        {"type": "identify", "userId": f"x{n}", "messageId": f"exp-{n}",
         "traits": {"email": f"Person.{n}@GMAIL.com", "plan": "gold"},
         "context": {"consent": {"categoryPreferences": {"Advertising": n % 2 == 0}}}}
        for n in range(4)
    ]  # fmt: skip
    sent = httpx.post(
        f"{server.url}/v1/batch",
        content=orjson.dumps({"batch": batch}),
        headers={"Authorization": basic_auth(key)},
    )
    assert sent.status_code == 200
    deadline = time.monotonic() + 20
    while httpx.get(f"{server.url}/api/pipeline", headers=server.admin).json()["lag_events"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    httpx.post(
        f"{server.url}/api/segments",
        headers=server.admin,
        json={"name": "gold", "query": 'traits.plan = "gold"'},
    ).raise_for_status()

    answer = httpx.get(
        f"{server.url}/api/audiences/gold/export", params={"format": "google"}, headers=server.admin
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    summary = orjson.loads(answer.headers["x-tessera-export"])
    assert (summary["members"], summary["refused_consent"], summary["rows"]) == (4, 2, 2)
    assert platforms.sha256_hex("person0@gmail.com") in answer.text
    assert platforms.sha256_hex("person1@gmail.com") not in answer.text

    bad = httpx.get(
        f"{server.url}/api/audiences/gold/export", params={"format": "x"}, headers=server.admin
    )
    assert bad.status_code == 400
    assert "google, google-mobile, meta, openrtb" in bad.json()["message"]
    missing = httpx.get(
        f"{server.url}/api/audiences/nope/export", params={"format": "meta"}, headers=server.admin
    )
    assert missing.status_code == 404

    target = tmp_path / "gold-meta.csv"
    printed = tessera(server.data_dir, "audiences", "export", "gold", "--format", "meta",
                      "--out", str(target))  # fmt: skip
    assert "2 rows" in printed.stdout and "2 without advertising consent" in printed.stdout
    assert platforms.sha256_hex("person.2@gmail.com") in target.read_text()
    failed = tessera(server.data_dir, "audiences", "export", "nope", "--format", "meta",
                     "--out", str(target), expect=1)  # fmt: skip
    assert "(not_found)" in failed.stderr
