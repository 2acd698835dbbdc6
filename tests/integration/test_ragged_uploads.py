"""Campaign and feed uploads: a ragged row or an unusable number is a rejected row with its
reason, never a failed upload (found by the fuzz layer: a 500) nor a silently lost value."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from tessera.audiences import campaigns, feeds, taxonomy
from tessera.runtime import Runtime

NOW = datetime(2026, 6, 1)
IAB = Path(__file__).resolve().parents[1] / "fixtures" / "iab"


def rejected(summary: dict[str, object]) -> dict[str, str]:
    """Reject file rows as {raw row: reason}."""
    with Path(str(summary["reject_file"])).open(newline="") as handle:
        return {row["row"]: row["reason"] for row in csv.DictReader(handle)}


def test_campaign_results_reject_ragged_rows_odd_digits_and_infinite_costs(
    runtime: Runtime, tmp_path: Path
) -> None:
    results = tmp_path / "results.csv"
    results.write_text(
        "campaign,day,audience,impressions,clicks,conversions,cost\n"
        "spring,2026-05-01,fr,10,1,0,1.5\n"
        "spring,2026-05-02,fr,10,1,0,1.5,extra,cells\n"
        "spring,2026-05-03,fr,²,1,0,1\n"
        "spring,2026-05-04,fr,10,1,0,inf\n"
        "spring,2026-05-05,fr,10,1,0,nan\n"
    )
    summary = campaigns.import_results(runtime.store, results, tmp_path, NOW).model_dump()
    assert (summary["accepted"], summary["rejected"]) == (1, 4)
    reasons = rejected(summary)
    ragged = "spring,2026-05-02,fr,10,1,0,1.5,extra,cells"
    assert "2 more cell(s) than the header" in reasons[ragged]
    assert "impressions '²' is not a whole number" in reasons["spring,2026-05-03,fr,²,1,0,1"]
    assert "cost 'inf' is not a number" in reasons["spring,2026-05-04,fr,10,1,0,inf"]
    assert "cost 'nan' is not a number" in reasons["spring,2026-05-05,fr,10,1,0,nan"]


def test_campaign_conversions_reject_ragged_rows_and_infinite_values(
    runtime: Runtime, tmp_path: Path
) -> None:
    conversions = tmp_path / "conversions.csv"
    conversions.write_text(
        "campaign,email,value\nspring,a@example.com,12\nspring,b@example.com,nan\n"
        "spring,c@example.com,1,2\n"
    )
    summary = campaigns.import_conversions(runtime.store, conversions, tmp_path).model_dump()
    assert (summary["accepted"], summary["rejected"]) == (1, 2)
    reasons = rejected(summary)
    assert "is malformed" in reasons["spring,b@example.com,nan"]
    assert "1 more cell(s) than the header" in reasons["spring,c@example.com,1,2"]


def test_a_feed_rejects_ragged_rows_and_a_cpm_that_is_not_finite(
    runtime: Runtime, tmp_path: Path
) -> None:
    taxonomy.load(runtime.store, IAB / "audience-taxonomy-1.1.tsv", "iab-audience", tmp_path)
    feed = tmp_path / "provider.csv"
    feed.write_text("cookie_id,segments,cpm\nck-1,720,1.5\nck-2,720,nan\nck-3,720,1,extra\n")
    options = feeds.FeedOptions("travelco")
    summary = feeds.import_feed(runtime.store, feed, options, tmp_path, NOW).model_dump()
    assert (summary["accepted"], summary["rejected"]) == (1, 2)
    reasons = rejected(summary)
    assert "cpm a number, not negative" in reasons["ck-2,720,nan"]
    assert "1 more cell(s) than the header" in reasons["ck-3,720,1,extra"]
