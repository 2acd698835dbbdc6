"""List commands give the same answer with and without a running server, say when they
truncate, and stream every row with --all."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.api.test_cli import tessera
from tests.conftest import basic_auth, start_server

PEOPLE = 30

COMMANDS = [
    ("segments", "members", "pro", "--json"),
    ("segments", "members", "pro", "--limit", "7"),
    ("segments", "members", "pro", "--limit", "7", "--json"),
    ("segments", "members", "pro", "--all", "--json"),
    ("segments", "members", "pro", "--all"),
    # Past a page's maximum the CLI pages itself (the server's limit answered 400 before).
    ("segments", "members", "pro", "--limit", "20000", "--json"),
    ("profiles", "search", "--identifier", "cli-", "--limit", "500", "--json"),
    ("profiles", "search", "--identifier", "cli-", "--limit", "5", "--json"),
    ("events", "rejected", "--json"),
    ("events", "tail", "--limit", "4", "--json"),
]


def fill(data: Path) -> dict[tuple[str, ...], tuple[str, str]]:
    """Load people and rejects through a real server; the commands' output through it."""
    server = start_server(data)
    try:
        key = server.create_source("cli-web", "web")
        batch = [
            {
                "type": "identify",
                "userId": f"cli-{n:02d}",
                "messageId": f"cli-{n}",
                "traits": {"plan": "pro", "email": f"cli-{n:02d}@example.com"},
            }
            for n in range(PEOPLE)
        ] + [{"type": "purchase", "userId": "x", "messageId": f"bad-{n}"} for n in range(3)]
        answer = httpx.post(f"{server.url}/v1/batch", content=orjson.dumps({"batch": batch}),
                            headers={"Authorization": basic_auth(key)})  # fmt: skip
        assert answer.status_code == 200
        server.caught_up()
        created = httpx.post(f"{server.url}/api/segments", headers=server.admin,
                             json={"name": "pro", "query": 'traits.plan = "pro"'})  # fmt: skip
        assert created.status_code == 201, created.text
        return {command: run(data, command) for command in COMMANDS}
    finally:
        server.stop()


def run(data: Path, command: tuple[str, ...]) -> tuple[str, str]:
    result = tessera(data, *command)
    return result.stdout, result.stderr


def test_list_commands_answer_the_same_with_or_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    through_server = fill(data)
    for command in COMMANDS:
        assert run(data, command) == through_server[command], " ".join(command)


def test_members_say_when_they_truncate_and_all_streams_every_member(tmp_path: Path) -> None:
    data = tmp_path / "data"
    answers = fill(data)
    table, note = answers[("segments", "members", "pro", "--limit", "7")]
    assert f"showing 7 of {PEOPLE}; --all for every member" in note
    assert table.count("@example.com") == 7  # whole e-mails, even into a pipe
    page = orjson.loads(answers[("segments", "members", "pro", "--limit", "7", "--json")][0])
    assert (len(page["items"]), page["total"]) == (7, PEOPLE) and page["next_cursor"]
    rest = orjson.loads(tessera(data, "segments", "members", "pro", "--cursor",
                                page["next_cursor"], "--json").stdout)  # fmt: skip
    assert len(rest["items"]) == PEOPLE - 7 and rest["next_cursor"] is None
    lines = answers[("segments", "members", "pro", "--all", "--json")][0].splitlines()
    members = [orjson.loads(line) for line in lines]
    assert len(members) == len({m["profile_id"] for m in members}) == PEOPLE
    assert {m["user_id"] for m in members} == {f"cli-{n:02d}" for n in range(PEOPLE)}
    everyone, quiet = answers[("segments", "members", "pro", "--json")]
    assert len(orjson.loads(everyone)["items"]) == PEOPLE and "showing" not in quiet
    rejected = orjson.loads(answers[("events", "rejected", "--json")][0])
    assert rejected["total"] == 3
