"""The audit log's hash chain on a real DuckDB file: intact, an edited row shows, a removed
row shows, and an erasure's redaction keeps the chain whole."""

from __future__ import annotations

from pathlib import Path

from tessera.privacy import audit
from tessera.store import open_store


def test_the_chain_verifies_and_an_edited_or_removed_row_shows(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    for i in range(5):
        audit.record(store, "jane", "POST /api/segments", f"seg-{i}", {"n": i}, role="admin",
                     address="10.0.0.1")  # fmt: skip
    assert audit.verify(store).intact
    store.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    broken = audit.verify(store)
    assert not broken.intact and broken.first_broken_seq == 3
    store.execute("UPDATE audit_log SET actor = 'jane' WHERE seq = 3")
    store.execute("UPDATE audit_log SET detail = '{\"n\":99}' WHERE seq = 2")
    assert audit.verify(store).first_broken_seq == 2
    store.execute("UPDATE audit_log SET detail = '{\"n\":1}' WHERE seq = 2")
    assert audit.verify(store).intact
    store.execute("DELETE FROM audit_log WHERE seq = 4")
    assert audit.verify(store).first_broken_seq == 5
    store.close()


def test_redaction_blanks_personal_values_and_keeps_the_chain(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    audit.record(store, "agent-1", "profile.view", "email:jane@example.com")
    audit.record(store, "agent-1", "profile.view", "email:bob@example.com")
    assert audit.redact(store, ["jane@example.com"]) == 1
    page = audit.listing(store)
    targets = {item["target"] for item in page.items}
    assert targets == {audit.REDACTED, "email:bob@example.com"}
    assert audit.verify(store).intact
    store.close()
