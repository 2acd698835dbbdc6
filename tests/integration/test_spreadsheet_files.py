"""Files Tessera writes for people to open in a spreadsheet: no cell runs as a formula."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from tessera import spreadsheet
from tessera.audiences import feeds, taxonomy
from tessera.runtime import Runtime

IAB = Path(__file__).resolve().parents[1] / "fixtures" / "iab" / "audience-taxonomy-1.1.tsv"


def test_feed_reject_file_quotes_a_hostile_row(runtime: Runtime, tmp_path: Path) -> None:
    taxonomy.load(runtime.store, IAB, "iab-audience", tmp_path)
    feed = tmp_path / "feed.csv"
    feed.write_text('anonymous_id,segments\n=HYPERLINK("http://evil.example"),no-such-id\n')
    now = datetime.now(UTC).replace(tzinfo=None)
    summary = feeds.import_feed(
        runtime.store, feed, feeds.FeedOptions("travelco"), tmp_path / "rejects", now
    ).model_dump()
    assert summary["rejected"] == 1
    with Path(summary["reject_file"]).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[1][2] == '\'=HYPERLINK("http://evil.example"),no-such-id'
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(spreadsheet.FORMULA_STARTS)]
