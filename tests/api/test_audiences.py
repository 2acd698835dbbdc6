"""Audience exports over HTTP and through the CLI (which talks to the running server)."""

from __future__ import annotations

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
    server.caught_up()
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


IAB = Path(__file__).resolve().parents[1] / "fixtures" / "iab"
#: Consent that lets a person's data be used for advertising (profiles/consent.py).
ADVERTISING_YES = {"categoryPreferences": {"advertising": True}}


def test_taxonomy_and_feed_over_http_and_the_cli(server: LiveServer, tmp_path: Path) -> None:
    loaded = tessera(server.data_dir, "audiences", "taxonomy", "load",
                     str(IAB / "audience-taxonomy-1.1.tsv"), "--json")  # fmt: skip
    assert orjson.loads(loaded.stdout)["nodes"] == 1558
    listed = httpx.get(f"{server.url}/api/audiences/taxonomies", headers=server.admin).json()
    assert {"taxonomy": "iab-audience", "nodes": 1558, "tiers": 6} in listed
    top = httpx.get(
        f"{server.url}/api/audiences/taxonomies/iab-audience", headers=server.admin
    ).json()
    assert [n["name"] for n in top] == ["Demographic", "Interest", "Purchase Intent*"]

    key = server.create_source("tp-web", "web")
    httpx.post(
        f"{server.url}/v1/page",
        # The visitor allows advertising: third-party data is joined to nobody else.
        content=orjson.dumps({"anonymousId": "tp-1", "messageId": "tp-1",
                              "context": {"externalIds": [{"id": "ck-tp", "type": "cookie_id"}],
                                          "consent": ADVERTISING_YES}}),
        headers={"Authorization": basic_auth(key)},
    ).raise_for_status()  # fmt: skip
    feed = tmp_path / "feed.csv"
    feed.write_text("cookie_id,segments\nck-tp,720\nck-x,nope\n")
    with feed.open("rb") as handle:
        imported = httpx.post(
            f"{server.url}/api/audiences/feeds",
            headers=server.admin,
            files={"file": ("feed.csv", handle)},
            data={"provider": "travelco", "cpm": "2.5", "lifetime_days": "60"},
        )
    assert imported.status_code == 200, imported.text
    assert (imported.json()["accepted"], imported.json()["rejected"]) == (1, 1)
    catalogue = tessera(server.data_dir, "audiences", "third-party", "--json")
    [segment] = orjson.loads(catalogue.stdout)
    assert (segment["segment_id"], segment["cpm"], segment["members"]) == ("720", 2.5, 1)
    server.caught_up()
    preview = httpx.post(
        f"{server.url}/api/segments/preview",
        headers=server.admin,
        json={"query": 'anonymous and has third_party "IAB:Interest > Travel"'},
    ).json()
    assert preview["size"] == 1
    mine = httpx.get(
        f"{server.url}/api/profiles/cookie_id:ck-tp/third-party", headers=server.admin
    ).json()
    assert [row["path"] for row in mine] == ["Interest > Travel > Adventure Travel"]
    bad = tessera(server.data_dir, "audiences", "feed", "import", str(feed), "--provider",
                  "x", "--taxonomy", "nope", expect=1)  # fmt: skip
    assert "is not loaded" in bad.stderr


def test_lookalike_over_http_and_the_cli(server: LiveServer) -> None:
    key = server.create_source("lk-web", "web")
    batch: list[dict[str, object]] = []
    for n in range(120):
        who = {"userId": f"lk{n}"} if n < 20 or n >= 40 else {"anonymousId": f"lka{n}"}
        if n < 20:
            batch.append({"type": "identify", **who, "messageId": f"lki{n}",
                          "traits": {"tier": "gold"}})  # fmt: skip
        if n < 40 or n % 30 == 0:
            batch.append({"type": "track", **who, "event": "Yacht Viewed",
                          "messageId": f"lky{n}"})  # fmt: skip
        batch.append(
            {
                "type": "track",
                **who,
                "event": "Home Viewed",
                "messageId": f"lkh{n}",
                "context": {"consent": ADVERTISING_YES},
            }
        )  # lookalikes need it
    httpx.post(
        f"{server.url}/v1/batch",
        content=orjson.dumps({"batch": batch}),
        headers={"Authorization": basic_auth(key)},
    ).raise_for_status()
    server.caught_up()
    httpx.post(
        f"{server.url}/api/segments",
        headers=server.admin,
        json={"name": "gold-tier", "query": 'traits.tier = "gold"'},
    ).raise_for_status()
    created = httpx.post(
        f"{server.url}/api/audiences/lookalikes",
        headers=server.admin,
        json={"name": "gold-like", "seed": "gold-tier", "reach": 20, "population": "anonymous"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    report = created.json()
    assert report["reach"] == 20 and report["weights"][0]["feature"] == "event:Yacht Viewed"
    listed = tessera(server.data_dir, "audiences", "lookalike", "list", "--json")
    assert [row["name"] for row in orjson.loads(listed.stdout)] == ["gold-like"]
    shown = tessera(server.data_dir, "audiences", "lookalike", "show", "gold-like")
    assert "Reach and accuracy" in shown.stdout and "Yacht Viewed" in shown.stdout
    segment = httpx.get(f"{server.url}/api/segments/gold-like", headers=server.admin).json()
    assert segment["size"] == 20 and segment["query"] == 'in lookalike "gold-like"'
    again = httpx.post(
        f"{server.url}/api/audiences/lookalikes",
        headers=server.admin,
        json={"name": "gold-like", "seed": "gold-tier", "reach": 5},
    )
    assert again.status_code == 409
