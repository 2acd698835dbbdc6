"""What the demo adds once its events are in, so that every page of the console has
something to show on first start, created through the admin API as a user would:

- the IAB Audience and Content taxonomies (data/, CC BY 3.0) and a data provider's feed
  that puts some of the company's browsers in IAB interest segments;
- a computed trait (`product_views_30d`) beside the built-in ones, and segments: one on a
  trait, two on computed traits, the buyers that seed...
- ...a lookalike of the buyers (its own segment, `demo-buyers-lookalike`);
- a campaign (`demo-autumn-sale`) with two weeks of delivery results per audience, a 20%
  holdout of two of them, and conversions matched to people by e-mail, so the report has
  lift;
- the predictive models fitted (lifetime value, churn risk, purchase propensity).

Deterministic for a seed. A second run keeps what exists (409s are skipped).
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from tessera.demo.generator import Company

DATA = Path(__file__).resolve().parent / "data"
TAXONOMIES = {
    "iab-audience": "audience-taxonomy-1.1.tsv",
    "iab-content": "content-taxonomy-3.1.tsv",
}
#: the generator's hidden interests, as IAB Audience Taxonomy 1.1 interest segments
INTEREST_SEGMENTS = {
    "running": "410",  # Interest | Healthy Living | Running and Jogging
    "fashion": "676",  # Interest | Style & Fashion
    "electronics": "703",  # Interest | Technology & Computing | Consumer Electronics
    "home": "457",  # Interest | Home & Garden
    "beauty": "677",  # Interest | Style & Fashion | Beauty
    "travel": "719",  # Interest | Travel
}
PROVIDER = "acme-data"
TRAIT = {
    "name": "product_views_30d",
    "function": "count",
    "event": "Product Viewed",
    "window_days": 30,
}
SEGMENTS = {
    "demo-buyers": 'did "Order Completed"',
    "demo-repeat-buyers": "computed.order_count >= 2",
    "demo-window-shoppers": 'computed.product_views_30d >= 3 and not did "Order Completed"',
    "demo-france": 'traits.country = "FR"',
}
LOOKALIKE = {"name": "demo-buyers-lookalike", "seed": "demo-buyers", "reach": 0}
CAMPAIGN = "demo-autumn-sale"
HOLDOUTS = ("demo-repeat-buyers", "demo-buyers-lookalike")
CAMPAIGN_DAYS = 14


def create(admin: httpx.Client, company: Company, seed: int, today: date) -> dict[str, Any]:
    """Everything above, in order (the lookalike needs its seed segment's members)."""
    rng = random.Random(seed)
    made: dict[str, Any] = {"taxonomies": [], "segments": []}
    for name, file_name in TAXONOMIES.items():
        taxonomy_file = (file_name, (DATA / file_name).read_bytes())
        _post(admin, "/api/audiences/taxonomies", files={"file": taxonomy_file},
              data={"name": name})  # fmt: skip
        made["taxonomies"].append(name)
    feed = _feed(company, rng)
    _post(admin, "/api/audiences/feeds", files={"file": ("acme-data.csv", feed)},
          data={"provider": PROVIDER, "cpm": "1.5", "lifetime_days": "60",
                "restrictions": "no health targeting"})  # fmt: skip
    made["feed"] = PROVIDER
    _post(admin, "/api/computed-traits", json=TRAIT)
    for name, query in SEGMENTS.items():
        _post(admin, "/api/segments", json={"name": name, "query": query})
        made["segments"].append(name)
    reach = max(5, len(company.people) // 10)
    made["lookalike"] = _lookalike(admin, reach)
    for audience in HOLDOUTS:  # so the campaign report has a lift to show
        if audience == LOOKALIKE["name"] and made["lookalike"] is None:
            continue
        _post(admin, f"/api/audiences/{audience}/holdout", json={"share": 0.2})
    _post(admin, "/api/audiences/campaigns/results",
          files={"file": ("demo-autumn-sale.csv", _results(rng, today))})  # fmt: skip
    conversions = _conversions(company, rng, today)
    if conversions:
        _post(admin, "/api/audiences/campaigns/conversions",
              files={"file": ("demo-autumn-sale-conversions.csv", conversions)})  # fmt: skip
    made["campaign"] = CAMPAIGN
    # Lifetime value, churn risk and propensity (the Predict page, predicted traits on the
    # profiles). A model that too small a demo cannot fit is recorded as not fitted, with
    # the reason; a refusal (400) leaves the rest of the demo as it is.
    fitted = admin.post("/api/predict/fit", timeout=600)
    if fitted.status_code != 400:
        fitted.raise_for_status()
    made["predictions"] = fitted.status_code == 200
    return made


def _lookalike(admin: httpx.Client, reach: int) -> str | None:
    """The demo's lookalike; None when a small demo has too few seed members who allow
    advertising (a lookalike is built from those only): the rest of the demo goes on."""
    response = admin.post("/api/audiences/lookalikes", json={**LOOKALIKE, "reach": reach})
    if response.status_code == 400 and response.json().get("field") == "seed":
        return None
    if response.status_code != 409:
        response.raise_for_status()
    return str(LOOKALIKE["name"])


def _post(admin: httpx.Client, path: str, **kwargs: Any) -> None:
    response = admin.post(path, **kwargs)
    if response.status_code == 409:  # made by an earlier run
        return
    response.raise_for_status()


def _feed(company: Company, rng: random.Random) -> bytes:
    """A provider's view of the company's browsers: the interests it guessed right, and
    some it guessed wrong (a feed is never clean)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["anonymous_id", "segments"])
    wrong = list(INTEREST_SEGMENTS.values())
    for person in company.people:
        if rng.random() > 0.6:
            continue
        segments = {INTEREST_SEGMENTS[i] for i in person.interests if i in INTEREST_SEGMENTS}
        if rng.random() < 0.3:
            segments.add(rng.choice(wrong))
        for cookie in person.cookies:
            writer.writerow([cookie, "|".join(sorted(segments))])
    return out.getvalue().encode()


def _results(rng: random.Random, today: date) -> bytes:
    """Two weeks of delivery per audience: the lookalike reaches further and converts a
    little less than the repeat buyers; the window shoppers are the cheap test."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["campaign", "day", "audience", "impressions", "clicks", "conversions", "cost"])
    audiences = {"demo-buyers-lookalike": (9000, 0.012, 0.05),
                 "demo-repeat-buyers": (4000, 0.02, 0.08),
                 "demo-window-shoppers": (6000, 0.009, 0.03)}  # fmt: skip
    for offset in range(CAMPAIGN_DAYS, 0, -1):
        day = today - timedelta(days=offset)
        for audience, (volume, click_rate, conversion_rate) in audiences.items():
            impressions = int(volume * rng.uniform(0.7, 1.3))
            clicks = int(impressions * click_rate * rng.uniform(0.8, 1.2))
            conversions = int(clicks * conversion_rate * rng.uniform(0.5, 1.5))
            cost = round(impressions / 1000 * rng.uniform(2.0, 3.5), 2)
            writer.writerow([CAMPAIGN, day.isoformat(), audience, impressions, clicks,
                             conversions, cost])  # fmt: skip
    return out.getvalue().encode()


def _conversions(company: Company, rng: random.Random, today: date) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["campaign", "day", "email", "value"])
    rows = 0
    for person in company.people:
        if person.email and rng.random() < 0.08:
            day = today - timedelta(days=rng.randint(1, CAMPAIGN_DAYS))
            value = round(rng.uniform(20, 180), 2)
            writer.writerow([CAMPAIGN, day.isoformat(), person.email, value])
            rows += 1
    return out.getvalue().encode() if rows else b""
