"""Imports through the admin API and the console against a real server: files and
mappings that used to answer a 500, and imports a stopped process left running."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tessera.events.importer import record_start
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server

MAPPING = "identifiers: {userId: id}\ntraits: {note: note}\n"


@pytest.fixture(scope="module")
def crm(server: LiveServer) -> str:
    server.create_source("crm-imports", "crm")
    return "crm-imports"


def upload(
    server: LiveServer, source: str, name: str, content: bytes, mapping: str = MAPPING
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/imports",
        headers=server.admin,
        files={"file": (name, content)},
        data={"mapping": mapping, "source": source, "wait": "true"},
        timeout=60,
    )


def test_csv_with_a_cell_past_the_csv_module_limit_imports_the_other_rows(
    server: LiveServer, crm: str
) -> None:
    # A cell over 131,072 characters answered a 500 and imported nothing.
    rows = f"id,note\nu1,{'a' * 140_000}\nu2,{'b' * 1_100_000}\nu3,short\n"
    response = upload(server, crm, "notes.csv", rows.encode())
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (3, 2, 1)


def test_jsonl_with_a_300_deep_line_imports_the_other_lines(server: LiveServer, crm: str) -> None:
    lines = b'{"id": "d1"}\n{"id": "d2", "note": ' + b"[" * 300 + b"]" * 300 + b'}\n{"id": "d3"}\n'
    response = upload(server, crm, "deep.jsonl", lines)
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (2, 1)


def test_garbage_parquet_upload_is_a_400_naming_the_upload(server: LiveServer, crm: str) -> None:
    response = upload(server, crm, "customers.parquet", b"PAR1 but not really")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_import_file"
    assert "customers.parquet is not a readable Parquet file" in body["message"]
    assert "uploads" not in body["message"] and "tmp" not in body["message"]


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        (MAPPING + "csv: {delimiter: 'abc'}\n", "csv.delimiter must be one character"),  # was a 500
        (MAPPING + "csv: 5\n", "csv must be a mapping"),  # was ignored
        (MAPPING + "timestamp: [a]\n", "timestamp must be the column"),  # was a 500
    ],
)
def test_mapping_of_the_wrong_shape_is_invalid_mapping(
    server: LiveServer, crm: str, mapping: str, words: str
) -> None:
    response = upload(server, crm, "people.csv", b"id,note\nu1,x\n", mapping)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_mapping"
    assert words in response.json()["message"]


def test_import_left_running_is_interrupted_on_start_and_the_console_stops_polling(
    tmp_path: Path,
) -> None:
    # As kill -9 leaves it: the import's row says running, and no process runs it.
    data_dir = tmp_path / "data"
    runtime = Runtime.open(Settings(data_dir=data_dir, admin_token=ADMIN_TOKEN))
    source = runtime.sources.create("crm", "crm").source
    record_start(runtime.store, "imp_killed", source, "customers.csv")
    runtime.close()
    live = start_server(data_dir)
    try:
        (found,) = httpx.get(f"{live.url}/api/imports", headers=live.admin).json()["items"]
        assert (found["id"], found["status"]) == ("imp_killed", "interrupted")
        assert "stopped before it finished" in found["reason"]
        with httpx.Client(base_url=live.url) as console:
            console.post("/sign-in", data={"token": ADMIN_TOKEN})
            table = console.get("/imports/table")
        assert table.status_code == 200
        assert "interrupted" in table.text and "hx-trigger" not in table.text
    finally:
        live.stop()
