"""Segments over HTTP on a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tessera.runtime import Runtime
from tessera.segments.tree import Did, EventRef, Window, to_json
from tessera.settings import Settings
from tests.api.test_cli import tessera
from tests.conftest import ADMIN_TOKEN, LiveServer, basic_auth, start_server


def test_segment_lifecycle_over_http(server: LiveServer) -> None:
    key = server.create_source("segments-web", "web")
    batch = [
        {
            "type": "track",
            "userId": f"s{n}",
            "event": "Order Completed",
            "messageId": f"seg-{n}",
            "properties": {"revenue": 10 * n},
            "context": {"traits": {"country": "FR"}},
        }
        for n in range(1, 6)
    ]
    assert (
        httpx.post(
            f"{server.url}/v1/batch",
            content=orjson.dumps({"batch": batch}),
            headers={"Authorization": basic_auth(key)},
        ).status_code
        == 200
    )
    server.caught_up()
    api = f"{server.url}/api/segments"
    typo = httpx.post(
        f"{api}/preview", headers=server.admin, json={"query": 'traits.contry = "FR"'}
    )
    assert typo.status_code == 400
    assert typo.json()["code"] == "segment_unknown_name"
    assert "did you mean 'country'?" in typo.json()["message"]
    syntax = httpx.post(f"{api}/preview", headers=server.admin, json={"query": "traits.country ="})
    assert syntax.status_code == 400 and syntax.json()["code"] == "segment_syntax"
    query = 'traits.country = "FR" and sum(properties.revenue of event "Order Completed") >= 30'
    preview = httpx.post(f"{api}/preview", headers=server.admin, json={"query": query}).json()
    assert preview["size"] == 3
    created = httpx.post(api, headers=server.admin, json={"name": "big-fr", "query": query})
    assert created.status_code == 201 and created.json()["size"] == 3
    listed = {s["name"]: s["size"] for s in httpx.get(api, headers=server.admin).json()}
    assert listed["big-fr"] == 3
    members = httpx.get(f"{api}/big-fr/members", headers=server.admin).json()
    assert (len(members["items"]), members["total"], members["next_cursor"]) == (3, 3, None)
    why = httpx.get(f"{api}/big-fr/why/user_id:s1", headers=server.admin).json()
    assert why["holds"] is False and [p["holds"] for p in why["parts"]] == [True, False]
    history = httpx.get(f"{api}/big-fr/history", headers=server.admin).json()
    assert history["days"][-1]["size"] == 3
    assert httpx.delete(f"{api}/big-fr", headers=server.admin).status_code == 200
    assert httpx.get(f"{api}/big-fr", headers=server.admin).status_code == 404


HOSTILE = [
    ('traits.country = "a\x00b"', "segment_invalid_value"),
    ('traits.country = "a\x01b"', "segment_invalid_value"),
    ('did "Order Completed" in last 99999999999999999999 days', "segment_invalid_value"),
    ("not " * 3000 + "has email", "segment_too_complex"),
    (" and ".join(["has email"] * 2000), "segment_too_complex"),
    ('did "Order Completed" between "1997-13-01" and "1997-04-01"', "segment_invalid_value"),
    ('did "Order Completed" between "19970101" and "1997-04-01"', "segment_invalid_value"),
    ('did "Order Completed" between "1997-02-30" and "1997-04-01"', "segment_invalid_value"),
    ('did "Order Completed" between "01/01/1997" and "1997-04-01"', "segment_invalid_value"),
    ('did "Order Completed" between "yesterday" and "1997-04-01"', "segment_invalid_value"),
    ('did "Order Completed" between "1997" and "1997-04-01"', "segment_invalid_value"),
    ('did "Order Completed" between "1997-04-01" and "1997-01-01"', "segment_invalid_value"),
]


def console_client(server: LiveServer) -> httpx.Client:
    client = httpx.Client(base_url=server.url)
    signed = client.post("/sign-in", data={"token": ADMIN_TOKEN, "next": "/segments"})
    assert signed.status_code == 303
    return client


def test_hostile_queries_are_clear_400s_everywhere_and_nothing_is_saved(
    server: LiveServer,
) -> None:
    """Issue 10 (A.1, B): each gave a 500 (or saved a segment that froze the others)."""
    key = server.create_source("hostile-queries", "web")
    event = {"type": "track", "userId": "h1", "event": "Order Completed", "messageId": "h-1",
             "context": {"traits": {"country": "FR"}}}  # fmt: skip
    auth = {"Authorization": basic_auth(key)}
    sent = httpx.post(f"{server.url}/v1/track", json=event, headers=auth)
    assert sent.status_code == 200
    server.caught_up()
    api = f"{server.url}/api/segments"
    created = httpx.post(api, headers=server.admin, json={"name": "h-fr", "query": "has email"})
    assert created.status_code == 201
    console = console_client(server)
    for query, code in HOSTILE:
        answers = {
            "preview": httpx.post(f"{api}/preview", headers=server.admin, json={"query": query}),
            "create": httpx.post(api, headers=server.admin, json={"name": "h-bad", "query": query}),
            "update": httpx.put(f"{api}/h-fr", headers=server.admin, json={"query": query}),
            "console create": console.post("/segments", data={"name": "h-bad", "query": query}),
            "console edit": console.post("/segments/h-fr/edit", data={"query": query}),
        }
        for where, answer in answers.items():
            assert answer.status_code == 400, (where, query[:60], answer.text[:300])
            if not where.startswith("console"):
                assert answer.json()["code"] == code, (where, query[:60])
                assert "line 1, column" in answer.json()["message"]
        live = console.post("/segments/check", data={"query": query})
        assert live.status_code == 200 and "line 1, column" in live.text, query[:60]
    names = {s["name"]: s for s in httpx.get(api, headers=server.admin).json()}
    assert "h-bad" not in names
    assert names["h-fr"]["status"] == "ok"
    assert httpx.get(f"{api}/h-fr", headers=server.admin).json()["query"] == "has email"


def test_a_tab_inside_a_quoted_value_is_text(server: LiveServer) -> None:
    key = server.create_source("tab-values", "web")
    event = {"type": "identify", "userId": "t1", "messageId": "t-1",
             "traits": {"city": "a\tb"}}  # fmt: skip
    auth = {"Authorization": basic_auth(key)}
    sent = httpx.post(f"{server.url}/v1/identify", json=event, headers=auth)
    assert sent.status_code == 200
    server.caught_up()
    preview = httpx.post(
        f"{server.url}/api/segments/preview",
        headers=server.admin,
        json={"query": 'traits.city = "a\tb"'},
    )
    assert preview.status_code == 200 and preview.json()["size"] == 1


def test_updating_a_segment_over_http(server: LiveServer) -> None:
    api = f"{server.url}/api/segments"
    created = httpx.post(api, headers=server.admin, json={"name": "upd", "query": "has email"})
    assert created.status_code == 201
    updated = httpx.put(f"{api}/upd", headers=server.admin, json={"query": "has user_id"})
    assert updated.status_code == 200
    body = updated.json()
    assert body["query"] == "has user_id" and body["status"] == "ok" and body["size"] >= 1
    missing = httpx.put(f"{api}/nope", headers=server.admin, json={"query": "has email"})
    assert missing.status_code == 404


def test_a_failed_segment_shows_in_the_cli_the_api_and_the_console(tmp_path: Path) -> None:
    """A segment an older version saved with a date that does not exist: marked failed
    by the sweep, shown everywhere with its reason, and fixed by an update."""
    data = tmp_path / "data"
    runtime = Runtime.open(Settings(data_dir=data, admin_token=ADMIN_TOKEN))
    tree = to_json(Did(EventRef("Order Completed"), Window(start="1997-13-01", end="1997-04-01")))
    runtime.store.execute(
        "INSERT INTO segments (id, name, query, tree, description, created_at, updated_at) "
        "VALUES ('seg_old', 'old', ?, ?, 'old', now(), now())",
        [
            'did "Order Completed" between "1997-13-01" and "1997-04-01"',
            orjson.dumps(tree).decode(),
        ],
    )
    runtime.pipeline.refresh_computed_traits()  # the sweep
    runtime.close()
    listed = tessera(data, "segments", "list")
    assert "failed" in listed.stdout and "1997-13-01" in listed.stdout
    shown = tessera(data, "segments", "show", "old")
    assert "FAILED: '1997-13-01' is not a date that exists" in shown.stdout
    server = start_server(data)
    try:
        api = f"{server.url}/api/segments"
        [old] = httpx.get(api, headers=server.admin).json()
        assert old["status"] == "failed" and "1997-13-01" in old["failure"]
        console = console_client(server)
        assert 'data-status="failed"' in console.get("/segments").text
        page = console.get("/segments/old").text
        assert "failed at its last evaluation" in page and "1997-13-01" in page
        fixed = tessera(data, "segments", "update", "old", "--query", "has email", "--json")
        assert orjson.loads(fixed.stdout)["status"] == "ok"
        [old] = httpx.get(api, headers=server.admin).json()
        assert old["status"] == "ok" and old["failure"] is None
    finally:
        server.stop()


def test_the_cli_prints_queries_and_their_errors_as_text_not_markup(tmp_path: Path) -> None:
    """Rich markup in a query ("[/b]") crashed the error printer with a traceback, and
    "[true]" vanished from what was printed."""
    data = tmp_path / "data"
    closing = tessera(data, "segments", "preview", "--query", 'traits.c = "[/b]" &', expect=1)
    assert "Traceback" not in closing.stderr
    assert 'traits.c = "[/b]" &' in closing.stderr and "segment_syntax" in closing.stderr
    listed = tessera(data, "segments", "preview", "--query", "traits.vip in [true] &", expect=1)
    assert "traits.vip in [true] &" in listed.stderr
