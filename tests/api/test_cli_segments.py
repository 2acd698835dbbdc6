"""The `segments` and `audiences` commands, run as a user runs them: through a running
server and alone on the data directory, with the same answers both ways."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import orjson
import pytest

from tests.api.test_cli import as_json, tessera
from tests.conftest import basic_auth, start_server

IAB = Path(__file__).resolve().parents[1] / "fixtures" / "iab" / "audience-taxonomy-1.1.tsv"
PEOPLE = 12

SIGNALS = """taxonomy: iab-content
categories: {}
signals:
  - name: from_newsletter
    when: {utm_source: newsletter}
    lifetime_days: 30
"""

# Read-only commands: each must print the same through the server and without it.
COMMANDS = [
    ("segments", "list"),
    ("segments", "list", "--json"),
    ("segments", "show", "repeat"),
    ("segments", "show", "repeat", "--json"),
    ("segments", "preview", "--query", "computed.order_count >= 2"),
    ("segments", "history", "pro", "--json"),
    ("segments", "why", "repeat", "user_id:u-00"),
    ("segments", "why", "repeat", "user_id:u-01", "--json"),
    ("segments", "overlap", "--json"),
    ("segments", "members", "repeat", "--json"),
    ("traits", "list", "--json"),
    ("profiles", "show", "user_id:u-00", "--json"),
    ("audiences", "taxonomy", "list"),
    ("audiences", "taxonomy", "show", "iab-audience", "--search", "adventure", "--json"),
    ("audiences", "third-party", "--json"),
    ("audiences", "signals", "list", "--json"),
    ("audiences", "lookalike", "list", "--json"),
    ("audiences", "campaign", "report", "--json"),
]


def people() -> list[dict[str, object]]:
    """PEOPLE identified people on the pro or free plan; the even ones ordered twice."""
    batch: list[dict[str, object]] = []
    for n in range(PEOPLE):
        batch.append({"type": "identify", "userId": f"u-{n:02d}", "messageId": f"id-{n}",
                      "traits": {"plan": "pro" if n % 3 else "free",
                                 "email": f"u-{n:02d}@example.com"}})  # fmt: skip
        orders = 2 if n % 2 == 0 else 1
        batch += [
            {"type": "track", "userId": f"u-{n:02d}", "messageId": f"order-{n}-{k}",
             "event": "Order Completed", "properties": {"revenue": 10 + k}}
            for k in range(orders)
        ]  # fmt: skip
    return batch


def fill(data: Path, folder: Path) -> dict[tuple[str, ...], str]:
    """People through a real server; segments, a taxonomy, signals and a holdout through
    the CLI beside it; then every read-only command's output through the server."""
    server = start_server(data)
    try:
        key = server.create_source("web", "web")
        answer = httpx.post(f"{server.url}/v1/batch", content=orjson.dumps({"batch": people()}),
                            headers={"Authorization": basic_auth(key)})  # fmt: skip
        assert answer.status_code == 200, answer.text
        server.caught_up()
        signals = folder / "signals.yml"
        signals.write_text(SIGNALS)
        loaded = as_json(tessera(data, "audiences", "signals", "load", str(signals), "--json"))
        assert loaded == {"signals": 1, "categories": 0}
        repeat = as_json(tessera(data, "segments", "create", "repeat", "--query",
                                 "computed.order_count >= 2", "--json"))  # fmt: skip
        assert repeat["size"] == PEOPLE // 2
        tessera(data, "segments", "create", "pro", "--query", 'traits.plan = "pro"')
        # A signal trait is a computed trait a segment may name, through the server too.
        tessera(data, "segments", "create", "newsletter", "--query",
                "computed.from_newsletter = true")  # fmt: skip
        taxonomy = as_json(tessera(data, "audiences", "taxonomy", "load", str(IAB), "--json"))
        assert taxonomy["taxonomy"] == "iab-audience" and taxonomy["nodes"] > 100
        held = as_json(tessera(data, "audiences", "holdout", "pro", "--share", "25%", "--json"))
        assert held["share"] == 0.25
        return {command: tessera(data, *command).stdout for command in COMMANDS}
    finally:
        server.stop()


Filled = tuple[Path, dict[tuple[str, ...], str]]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """`fill` once for the module (a server and two dozen commands): each test works on a
    copy of the data directory it left, as if it had filled its own."""
    folder = tmp_path_factory.mktemp("filled")
    return folder / "data", fill(folder / "data", folder)


def copy_of(filled: Filled, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(filled[0], data, symlinks=True)
    return data


def test_segment_and_audience_commands_answer_the_same_with_or_without_a_server(
    filled: Filled, tmp_path: Path
) -> None:
    data = copy_of(filled, tmp_path)
    through_server = filled[1]
    for command in COMMANDS:
        assert tessera(data, *command).stdout == through_server[command], " ".join(command)
    why = orjson.loads(through_server[("segments", "why", "repeat", "user_id:u-01", "--json")])
    assert why["holds"] is False and why["condition"]
    assert "yes" in through_server[("segments", "why", "repeat", "user_id:u-00")]


def test_segment_commands_without_a_server(filled: Filled, tmp_path: Path) -> None:
    data = copy_of(filled, tmp_path)
    created = as_json(tessera(data, "segments", "create", "big-spenders", "--query",
                              "known and (computed.total_revenue >= 21)", "--json"))  # fmt: skip
    assert created["size"] == PEOPLE // 2
    updated = as_json(tessera(data, "segments", "update", "big-spenders", "--query",
                              "computed.order_count >= 1", "--json"))  # fmt: skip
    assert updated["size"] == PEOPLE
    preview = tessera(data, "segments", "preview", "--query", "computed.from_newsletter = true")
    assert preview.stdout.startswith("0 profiles")
    tessera(data, "segments", "delete", "big-spenders")
    names = [s["name"] for s in as_json(tessera(data, "segments", "list", "--json"))]
    assert names == ["newsletter", "pro", "repeat"]
    answer = tessera(data, "segments", "create", "typo", "--query",
                     "computed.order_cont >= 1", expect=1)  # fmt: skip
    assert "unknown computed trait 'order_cont'" in answer.stderr
    assert "Traceback" not in answer.stderr
    missing = tessera(data, "segments", "why", "nope", "user_id:u-00", expect=1)
    assert "nope" in missing.stderr


def test_audience_commands_without_a_server(filled: Filled, tmp_path: Path) -> None:
    data = copy_of(filled, tmp_path)
    feed = tmp_path / "feed.csv"
    feed.write_text("id,id_type,segments\ncookie-1,cookie_id,720\nnobody,fax,720\n")
    imported = as_json(tessera(data, "audiences", "feed", "import", str(feed), "--provider",
                               "travelco", "--json"))  # fmt: skip
    assert (imported["accepted"], imported["rejected"]) == (1, 1)
    third = as_json(tessera(data, "audiences", "third-party", "--json"))
    assert [row["provider"] for row in third] == ["travelco"]
    report = tessera(data, "audiences", "campaign", "report")
    assert "Traceback" not in report.stderr
    assert "cpm" in report.stdout  # a column: what an ad buyer compares first
    shown = as_json(tessera(data, "audiences", "signals", "list", "--json"))
    assert [s["name"] for s in shown["signals"]] == ["from_newsletter"]
