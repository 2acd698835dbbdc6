"""The admin API against a real server: auth, sources, the log, imports."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def test_admin_api_needs_the_token(server: LiveServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = httpx.get(f"{server.url}/api/sources", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"


def test_sources_lifecycle(server: LiveServer) -> None:
    created = httpx.post(
        f"{server.url}/api/sources",
        headers=server.admin,
        json={"name": "crm-export", "channel": "crm"},
    )
    assert created.status_code == 201
    assert set(created.json()) == {"id", "name", "channel", "write_key"}
    listed = httpx.get(f"{server.url}/api/sources", headers=server.admin).json()
    entry = next(s for s in listed if s["name"] == "crm-export")
    assert "write_key" not in entry and entry["write_key_prefix"] == created.json()["write_key"][:8]
    rotated = httpx.post(f"{server.url}/api/sources/crm-export/rotate-key", headers=server.admin)
    assert rotated.json()["write_key"] != created.json()["write_key"]
    duplicate = httpx.post(
        f"{server.url}/api/sources",
        headers=server.admin,
        json={"name": "crm-export", "channel": "crm"},
    )
    assert duplicate.status_code == 409


def test_bad_admin_input_is_a_400_naming_the_field(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/api/sources", headers=server.admin, json={"name": "x"})
    assert response.status_code == 400
    assert "channel" in response.json()["message"]
    unknown = httpx.post(
        f"{server.url}/api/sources", headers=server.admin, json={"name": "x", "channel": "telex"}
    )
    assert unknown.status_code == 400 and "'telex'" in unknown.json()["message"]
    missing = httpx.get(f"{server.url}/api/sources/nope", headers=server.admin)
    assert missing.status_code == 404


def test_import_upload(server: LiveServer) -> None:
    server.create_source("calls", "phone")
    csv_text = "call_id,caller,reason\nC1,+33 6 12 34 56 78,returns\nC2,,payment\n"
    mapping = (
        "type: track\nevent: Call Completed\nmessage_id: call_id\n"
        "identifiers: {phone: caller}\nproperties: {reason: reason}\n"
    )
    response = httpx.post(
        f"{server.url}/api/imports",
        headers=server.admin,
        files={"file": ("calls.csv", csv_text.encode())},
        data={"mapping": mapping, "source": "calls", "wait": "true"},
    )
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["accepted"], summary["rejected"]) == (1, 1)
    listed = httpx.get(f"{server.url}/api/imports", headers=server.admin).json()["items"]
    assert listed[0]["file_name"] == "calls.csv" and listed[0]["status"] == "done"
    bad = httpx.post(
        f"{server.url}/api/imports",
        headers=server.admin,
        files={"file": ("calls.csv", csv_text.encode())},
        data={"mapping": "type: [", "source": "calls"},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_mapping"


def test_stats_shape(server: LiveServer) -> None:
    stats = server.stats()
    assert {"events", "rejected", "sources"} <= set(stats)
