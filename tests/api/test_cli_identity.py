"""`tessera identity` as a user runs it: import a CRM file and a till file that share no
identifier, match, review, accept, and explain the link made (rejecting is tested through
the use case and the console)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.test_cli import as_json, tessera
from tests.integration.test_probabilistic_identity import _people

CRM = """type: identify
message_id: crm_id
identifiers: {crm_id: crm_id, email: email}
traits: {first_name: first, last_name: last, birthday: born, postcode: postcode}
"""
TILLS = """type: track
event: Order Completed
message_id: receipt
identifiers: {loyalty_id: card}
traits: {name: holder, birthday: holder_born, postcode: holder_postcode}
"""


def _files(folder: Path) -> tuple[Path, Path]:
    people = _people(60)
    crm, tills = folder / "crm.csv", folder / "tills.csv"
    crm.write_text("crm_id,email,first,last,born,postcode\n" + "".join(
        f"C{p['n']},{p['first'].lower()}.{p['n']}@example.fr,{p['first']},{p['last']},"
        f"{p['born']},{p['postcode']}\n" for p in people
    ))  # fmt: skip
    tills.write_text("receipt,card,holder,holder_born,holder_postcode\n" + "".join(
        f"R{p['n']},L{p['n']},{p['last'].upper()} {p['first'].upper()},"
        f"{'/'.join(reversed(p['born'].split('-')))},{p['postcode']}\n" for p in people
    ))  # fmt: skip
    (folder / "crm.yml").write_text(CRM)
    (folder / "tills.yml").write_text(TILLS)
    return crm, tills


def test_identity_match_review_accept_and_explain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSERA_IDENTITY_MATCH_THRESHOLD", "1.0")  # all to review
    data = tmp_path / "data"
    crm, tills = _files(tmp_path)
    tessera(data, "sources", "create", "crm", "--channel", "crm")
    tessera(data, "sources", "create", "shops", "--channel", "pos")
    tessera(data, "import", str(crm), "--source", "crm", "--mapping", str(tmp_path / "crm.yml"))
    tessera(data, "import", str(tills), "--source", "shops", "--mapping",
            str(tmp_path / "tills.yml"))  # fmt: skip
    tessera(data, "process")
    run = as_json(tessera(data, "identity", "match", "--json"))
    assert run["linked"] == 0 and run["review"] >= 50
    queue = as_json(tessera(data, "identity", "review", "--limit", "2", "--json"))
    assert [m["status"] for m in queue] == ["review", "review"]
    shown = tessera(data, "identity", "review", "--limit", "1").stdout
    assert "birth_date" in shown and "same date of birth" in shown
    accepted = as_json(tessera(data, "identity", "accept", queue[0]["match_id"], "--json"))
    assert accepted["status"] == "accepted"
    assert accepted["first_profile"] == accepted["second_profile"]
    explained = as_json(tessera(data, "profiles", "explain", accepted["first"],
                                accepted["second"], "--json"))  # fmt: skip
    step = next(s for s in explained["chain"] if "match" in s)
    assert step["match"]["match_id"] == accepted["match_id"]
    assert {w["field"] for w in step["match"]["waterfall"]} >= {"prior", "name", "birth_date"}
