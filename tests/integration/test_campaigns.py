"""Campaign results per audience, holdouts kept out of exports, and lift."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest

from tessera.audiences import campaigns, exports
from tessera.errors import InvalidField
from tessera.runtime import Runtime
from tessera.segments import service
from tests.integration.helpers import send

NOW = datetime(2026, 6, 1)


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    messages: list[dict[str, object]] = []
    for n in range(200):
        messages.append({
            "type": "identify", "userId": f"u{n}", "messageId": f"i{n}",
            "traits": {"email": f"p{n}@example.com", "country": "FR"},
            "context": {"consent": {"categoryPreferences": {"Advertising": True}}},
        })  # fmt: skip
        if n % 3 == 0:  # a third buy during the campaign
            messages.append({
                "type": "track", "userId": f"u{n}", "event": "Order Completed",
                "messageId": f"o{n}", "timestamp": "2026-05-10T10:00:00Z",
            })  # fmt: skip
    send(runtime, messages)
    runtime.pipeline.process()
    service.create(runtime.store, "fr", 'traits.country = "FR"', set(), now=NOW)
    return runtime


def test_a_holdout_is_stable_and_kept_out_of_exports(shop: Runtime) -> None:
    result = campaigns.holdout(shop.store, "fr", 0.2, NOW).model_dump()
    assert result["members"] == 200 and 20 <= result["held_out"] <= 60
    summary = exports.export(shop.store, "fr", "google", io.StringIO(), "required").model_dump()
    assert summary["held_out"] == result["held_out"]
    assert summary["exported_profiles"] == 200 - result["held_out"]
    salt, share = campaigns.holdout_of(shop.store, "fr") or ("", 0)
    assert campaigns.held_out("prf_x", salt, share) == campaigns.held_out("prf_x", salt, share)
    with pytest.raises(InvalidField, match=r"at most 0\.5"):
        campaigns.holdout(shop.store, "fr", 0.9, NOW)


def test_results_import_checks_rows_and_replaces_days(shop: Runtime, tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text(
        "campaign,day,audience,impressions,clicks,conversions,cost,reach\n"
        "spring,2026-05-01,fr,10000,200,20,150.0,4000\n"
        "spring,2026-05-02,fr,8000,120,10,110.0,4500\n"
        "spring,05/03/2026,fr,1,0,0,1,\n"
        "spring,2026-05-04,fr,10,20,0,1,\n"
        ",2026-05-04,fr,10,2,0,1,\n"
        "spring,2026-05-05,fr,ten,2,0,1,\n"
    )
    summary = campaigns.import_results(shop.store, results, tmp_path, NOW).model_dump()
    assert (summary["accepted"], summary["rejected"]) == (2, 4)
    reasons = Path(summary["reject_file"]).read_text()
    assert "is not a date" in reasons and "clicks exceed impressions" in reasons
    assert "no campaign" in reasons and "'ten' is not a whole number" in reasons
    campaigns.import_results(shop.store, results, tmp_path, NOW)  # again: replaced, not doubled
    [row] = [r.model_dump() for r in campaigns.report(shop.store, campaign="spring")]
    assert (row["impressions"], row["clicks"], row["conversions"]) == (18000, 320, 30)
    assert row["reach"] == 4500 and row["frequency"] == 4.0
    assert row["ctr"] == round(320 / 18000, 4) and row["cpa"] == round(260 / 30, 4)
    assert row["cpm"] == round(260 * 1000 / 18000, 4)


def test_conversions_join_profiles_and_lift_compares_with_the_holdout(
    shop: Runtime, tmp_path: Path
) -> None:
    campaigns.holdout(shop.store, "fr", 0.3, NOW)
    results = tmp_path / "r.csv"
    results.write_text("campaign,day,audience,impressions,clicks,conversions,cost\n"
                       "spring,2026-05-01,fr,1000,50,5,20\n")  # fmt: skip
    campaigns.import_results(shop.store, results, tmp_path, NOW)
    conversions = tmp_path / "c.csv"
    conversions.write_text(
        "campaign,email,value\nspring,P0@Example.com,10\n"
        "spring,p3@example.com,\nspring,,5\nspring,nobody@example.com,1\n"
    )
    summary = campaigns.import_conversions(shop.store, conversions, tmp_path).model_dump()
    assert (summary["accepted"], summary["rejected"]) == (3, 1)
    [row] = [r.model_dump() for r in campaigns.report(shop.store, campaign="spring")]
    assert row["converted_profiles"] == 2
    lift = row["lift"]
    assert lift["exposed"] + lift["holdout"] == 200
    assert lift["exposed_converted"] + lift["holdout_converted"] == 67  # every third of 200
    assert lift["exposed_rate"] == round(lift["exposed_converted"] / lift["exposed"], 4)
