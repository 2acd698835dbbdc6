"""The `tessera` command, run as a user runs it: alone, and beside a running server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer, start_server

MAPPING = """type: identify
identifiers: {email: email}
traits: {first_name: first}
"""


def tessera(data_dir: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TESSERA_DATA_DIR": str(data_dir), "TESSERA_ADMIN_TOKEN": ADMIN_TOKEN}
    result = subprocess.run(
        [sys.executable, "-m", "tessera.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == expect, result.stderr + result.stdout
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return orjson.loads(result.stdout)


def crm_file(folder: Path) -> Path:
    path = folder / "crm.csv"
    path.write_text("email,first\njane@x.fr,Jane\n,Nobody\nbob@x.fr,Bob\n")
    (folder / "crm.yml").write_text(MAPPING)
    return path


def test_cli_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = as_json(tessera(data, "sources", "create", "crm", "--channel", "crm", "--json"))
    assert set(created) == {"id", "name", "channel", "write_key"}
    listed = as_json(tessera(data, "sources", "list", "--json"))
    assert [s["name"] for s in listed] == ["crm"]
    path = crm_file(tmp_path)
    summary = as_json(
        tessera(
            data,
            "import",
            str(path),
            "--source",
            "crm",
            "--mapping",
            str(tmp_path / "crm.yml"),
            "--json",
        )
    )
    assert (summary["accepted"], summary["rejected"]) == (2, 1)
    assert "no identifier" in Path(summary["reject_file"]).read_text()
    again = as_json(
        tessera(
            data,
            "import",
            str(path),
            "--source",
            "crm",
            "--mapping",
            str(tmp_path / "crm.yml"),
            "--json",
        )
    )
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    stats = as_json(tessera(data, "stats", "--json"))
    assert (stats["events"], stats["rejected"], stats["sources"]) == (2, 0, 1)
    tail = as_json(tessera(data, "events", "tail", "--json"))
    assert {e["email"] for e in tail["items"]} == {"jane@x.fr", "bob@x.fr"}
    rotated = as_json(tessera(data, "sources", "rotate-key", "crm", "--json"))
    assert rotated["write_key"] != created["write_key"]
    tessera(data, "sources", "disable", "crm")
    assert as_json(tessera(data, "sources", "list", "--json"))[0]["enabled"] is False


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = tessera(data, "sources", "create", "x", "--channel", "fax", expect=1)
    assert "unknown channel 'fax'" in result.stderr
    result = tessera(data, "sources", "rotate-key", "nope", expect=1)
    assert "no source named 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused before Spark starts: a setting is KEY=VALUE, as spark-submit's --conf.
    result = tessera(data, "spark", "run", "--input", "x", "--output", "y", "--conf", "nope",
                     expect=1)  # fmt: skip
    assert "--conf 'nope' is not KEY=VALUE" in result.stderr


@pytest.fixture
def running(tmp_path: Path) -> LiveServer:
    live = start_server(tmp_path / "data")
    yield live  # type: ignore[misc]
    live.stop()


def test_cli_goes_through_a_running_server(running: LiveServer, tmp_path: Path) -> None:
    data = running.data_dir
    created = as_json(tessera(data, "sources", "create", "crm", "--channel", "crm", "--json"))
    assert created["name"] == "crm"
    path = crm_file(tmp_path)
    summary = as_json(
        tessera(
            data,
            "import",
            str(path),
            "--source",
            "crm",
            "--mapping",
            str(tmp_path / "crm.yml"),
            "--json",
        )
    )
    assert (summary["accepted"], summary["rejected"]) == (2, 1)
    stats = as_json(tessera(data, "stats", "--json"))
    assert stats["events"] == 2 and "writer_queue" in stats  # the server's answer
    assert as_json(tessera(data, "events", "rejected", "--json"))["total"] == 0


def test_demo_loads_through_the_collect_path_and_writes_ground_truth(tmp_path: Path) -> None:
    data = tmp_path / "data"
    summary = as_json(tessera(data, "demo", "--people", "150", "--seed", "3", "--json"))
    assert summary["http_events"] > 1000
    stats = as_json(tessera(data, "stats", "--json"))
    truth = (data / "demo" / "truth.csv").read_text().splitlines()
    assert stats["events"] == len(truth) - 1  # every record is in the log, once
    assert {s["source"] for s in stats["by_source"]} == {
        "web-shop",
        "mobile-app",
        "email-tool",
        "call-centre",
        "shops",
        "crm",
    }
    skipped = tessera(data, "demo", "--if-empty")
    assert "not loading" in skipped.stderr


def test_unify_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tessera(data, "sources", "create", "crm", "--channel", "crm")
    path = tmp_path / "crm.csv"
    path.write_text("email,first,card\nJane@X.fr,Jane,LC1\njane@x.fr ,Jane,LC2\n")
    (tmp_path / "crm.yml").write_text(
        "identifiers: {email: email, loyalty_id: card}\ntraits: {first_name: first}\n"
    )
    tessera(data, "import", str(path), "--source", "crm", "--mapping", str(tmp_path / "crm.yml"))
    assert as_json(tessera(data, "stats", "--json"))["lag_events"] == 2
    assert as_json(tessera(data, "process", "--json"))["events"] == 2
    profile = as_json(tessera(data, "profiles", "show", "email:JANE@x.fr", "--json"))
    assert {i["value"] for i in profile["identifiers"]} == {"jane@x.fr", "LC1", "LC2"}
    assert profile["traits"]["first_name"] == "Jane"
    answer = as_json(
        tessera(data, "profiles", "explain", "loyalty_id:LC1", "loyalty_id:LC2", "--json")
    )
    assert [step["to"] for step in answer["chain"]] == ["email:jane@x.fr", "loyalty_id:LC2"]
    (tmp_path / "traits.yml").write_text("name: cards\nfunction: count\n")
    tessera(data, "traits", "create", str(tmp_path / "traits.yml"))
    assert "cards" in tessera(data, "traits", "list").stdout
    split = as_json(
        tessera(
            data,
            "profiles",
            "unmerge",
            "loyalty_id:LC1",
            "loyalty_id:LC2",
            "--reason",
            "two cards, two people",
            "--json",
        )
    )
    assert split["first_profile"] != split["second_profile"]
    assert (
        "no profile has email:nobody@x.fr"
        in tessera(data, "profiles", "show", "email:nobody@x.fr", expect=1).stderr
    )
