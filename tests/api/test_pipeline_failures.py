"""Over HTTP and the CLI, on a real server: the pipeline sets a poison event aside and goes
on (issue 10, A.3), and identifiers are never lost without a trace (issue 10, C)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.api.test_cli import as_json, tessera
from tests.conftest import ADMIN_TOKEN, LiveServer, basic_auth, start_server
from tests.integration.helpers import send
from tests.integration.test_pipeline_failures import write_poison


def get(server: LiveServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=server.admin, params=params, timeout=60)


def post_batch(server: LiveServer, key: str, messages: list[dict[str, Any]]) -> None:
    response = httpx.post(
        f"{server.url}/v1/batch",
        content=orjson.dumps({"batch": messages}),
        headers={"Authorization": basic_auth(key)},
    )
    assert response.status_code == 200, response.text


def test_a_poison_event_is_set_aside_and_the_server_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runtime = Runtime.open(Settings(data_dir=data, admin_token=ADMIN_TOKEN))
    send(runtime, [{"type": "identify", "userId": "u1", "messageId": "m1"}])
    seq = write_poison(runtime, "m2")
    runtime.close()
    live = start_server(data)
    try:
        live.caught_up(timeout=60)
        assert live.stats()["pipeline_failed"] == 1
        [failed] = get(live, "/api/pipeline/failed").json()
        assert failed["seq"] == seq and failed["attempts"] == 3  # the default setting
        # New events are processed: nothing stalls behind the bad one.
        post_batch(live, live.create_source("shop"), [
            {"type": "identify", "userId": "u3", "messageId": "n1"},
        ])  # fmt: skip
        live.caught_up()
        assert get(live, "/api/profiles/user_id:u3", events=0).status_code == 200
        # The CLI goes through the server.
        assert [f["seq"] for f in as_json(tessera(data, "events", "failed", "--json"))] == [seq]
        assert "set aside 1 events" in tessera(data, "stats").stdout
        replay = httpx.post(
            f"{live.url}/api/pipeline/replay-failed", headers=live.admin, timeout=60
        ).json()
        assert (replay["replayed"], replay["still_failing"]) == (1, [seq])
        replayed = as_json(tessera(data, "events", "replay-failed", "--json"))
        assert replayed["still_failing"] == [seq]
        assert get(live, "/api/profiles/user_id:u3", events=0).status_code == 200
    finally:
        live.stop()
    log = live.log()
    assert f"event seq {seq} failed" in log
    assert "Recursion limit" not in log  # an exception's message never reaches the log


def test_lenient_identifiers_and_the_values_that_cannot_be_one(server: LiveServer) -> None:
    post_batch(server, server.create_source("identifiers"), [
        {"type": "identify", "userId": "jd", "messageId": "i1",
         "traits": {"email": "Jean.Dupont @Example.com", "phone": "+33 6 39 98 76 54"}},
        {"type": "identify", "userId": "bad", "messageId": "i2",
         "traits": {"email": "jean.dupont@", "phone": "+33 6"}},
    ])  # fmt: skip
    server.caught_up()
    by_email = get(server, "/api/profiles/email:jean.dupont@example.com", events=0)
    assert by_email.status_code == 200, by_email.text
    by_phone = get(server, f"/api/profiles/{quote('phone:+33 6 39 98 76 54')}", events=0)
    assert by_phone.status_code == 200, by_phone.text  # was 400: "not a valid phone"
    assert by_phone.json()["profile_id"] == by_email.json()["profile_id"]

    from_memory = get(server, "/api/profiles/user_id:bad", events=0).json()
    with_events = get(server, "/api/profiles/user_id:bad", events=5).json()
    for profile in (from_memory, with_events):
        assert [(d["type"], d["value"]) for d in profile["dropped_identifiers"]] == [
            ("email", "je…t@"),
            ("phone", "+…6"),
        ]
    assert server.stats()["dropped_identifiers"] >= 2
    explained = get(
        server, "/api/identity/explain", first="user_id:bad", second="user_id:jd"
    ).json()
    assert len(explained["dropped_identifiers"]["first"]) == 2
