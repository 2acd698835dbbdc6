"""Segments over HTTP on a real server."""

from __future__ import annotations

import httpx
import orjson

from tests.conftest import LiveServer, basic_auth


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
