"""Erasure and backups (issue 15): the receipt names the backups still holding the person,
and restoring an old backup does not bring an erased person back (checked on the bytes of
the restored directory)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tessera.governance import backups, erasure
from tessera.operations import backup
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.test_erasure import BOB, files_holding, needles, people

pytestmark = pytest.mark.slow


def test_erasure_reports_backups_and_a_restore_erases_the_person_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token="t" * 24)
    runtime = Runtime.open(settings)
    try:
        people(runtime)
        old = tmp_path / "backup-before"
        backup.to_folder(runtime, old)
        assert files_holding(old, needles()), "the backup holds her"
        backups.register(runtime.store, datetime(2026, 1, 1), None, 0)  # streamed away

        request = erasure.erase(runtime, "email:jane.doe@example.com")

        assert request.state == "done", request.reasons
        receipt = {r.system: r for r in request.receipts}["backups"]
        assert receipt.status == "unsupported"  # settled, but said
        assert str(old.resolve()) in receipt.detail
        assert "outside Tessera's reach" in receipt.detail
        assert (old / backups.ERASURES).is_file()
        note = (old / backups.ERASURES).read_bytes().lower()
        assert not any(n in note for n in needles())  # salted hashes only
    finally:
        runtime.close()

    # Into a new directory: the backup's erasures.json names her.
    fresh = Settings(data_dir=tmp_path / "restored", admin_token="t" * 24)
    restored = backup.restore(old, fresh)
    assert restored.erased_again == 1 and restored.suppressed_added > 0
    assert files_holding(fresh.data_dir, needles()) == []
    assert files_holding(fresh.data_dir, [BOB[1].encode()]), "Bob comes back"
    assert not (fresh.data_dir / backups.ERASURES).exists()

    # Over the live directory, from a copy that never got the note: the replaced
    # directory's own suppression list names her.
    (old / backups.ERASURES).unlink()
    again = backup.restore(old, settings, replace=True)
    assert again.erased_again == 1
    assert files_holding(settings.data_dir, needles()) == []
    reopened = Runtime.open(settings)
    try:
        emails = {r[0] for r in reopened.store.fetch_all(
            "SELECT value FROM identities WHERE type = 'email'")}  # fmt: skip
        assert emails == {BOB[1]}
    finally:
        reopened.close()
