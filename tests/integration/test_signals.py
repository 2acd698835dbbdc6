"""Signal traits on a real store: rules over page views, their lifetime, page categories on
the IAB Content Taxonomy, use in segments, and the bridge from visitor to customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tessera.audiences import signals, taxonomy
from tessera.errors import InvalidField
from tessera.identity.lookup import lookup
from tessera.profiles import view
from tessera.runtime import Runtime
from tessera.segments import service
from tests.integration.helpers import send

CONTENT = Path(__file__).resolve().parents[1] / "fixtures" / "iab" / "content-taxonomy-3.1.tsv"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"


def visit(who: str, path: str, days_ago: int, message: str, **context: object) -> dict[str, object]:
    when = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "type": "page", "anonymousId": who, "messageId": message,
        "properties": {"path": path, "url": f"https://shop.example{path}", **context.pop("p", {})},  # type: ignore[dict-item]
        "timestamp": when.isoformat(), "context": context,
    }  # fmt: skip


DOCUMENT = {
    "taxonomy": "iab-content",
    "categories": {"/travel": "653", "/shoes": "552"},
    "signals": [
        {"name": "travel_reader", "when": {"page_category": "Travel"}, "lifetime_days": 30},
        {"name": "from_google", "when": {"referrer_domain": "google.com"}, "lifetime_days": 90},
        {"name": "spring_campaign", "when": {"utm_campaign": "spring"}, "lifetime_days": 90},
        {"name": "on_mobile", "when": {"device_type": "mobile"}, "value": "yes",
         "lifetime_days": 90},
    ],
}  # fmt: skip


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    taxonomy.load(runtime.store, CONTENT, "iab-content", runtime.settings.rejects_dir)
    send(
        runtime,
        [
            visit("ann", "/travel/villas", 3, "1", userAgent=PHONE,
                  p={"referrer": "https://www.google.com/search?q=villa"}),
            visit("bob", "/travel/old", 60, "2", userAgent=DESKTOP),
            visit("cid", "/shoes/12", 1, "3", userAgent=DESKTOP,
                  campaign={"name": "spring", "source": "newsletter"}),
        ],
    )  # fmt: skip
    runtime.pipeline.process()
    signals.load_config(runtime.store, DOCUMENT, datetime.now(UTC).replace(tzinfo=None))
    runtime.pipeline.refresh_computed_traits()
    return runtime


def traits_of(runtime: Runtime, reference: str) -> dict[str, object]:
    profile = lookup(runtime.store, reference, None)
    computed: dict[str, object] = view.profile_from_store(runtime.store, profile)["computed_traits"]
    return computed


def test_signals_follow_their_rules_and_lifetimes(shop: Runtime) -> None:
    ann = traits_of(shop, "anonymous_id:ann")
    assert ann["travel_reader"] is True and ann["from_google"] is True
    assert ann["on_mobile"] == "yes"
    bob = traits_of(shop, "anonymous_id:bob")
    assert "travel_reader" not in bob  # 60 days ago: past its 30-day lifetime
    cid = traits_of(shop, "anonymous_id:cid")
    assert cid.get("spring_campaign") is True and "travel_reader" not in cid
    members = service.preview(shop.store, "computed.travel_reader = true", {"travel_reader"})
    assert members["size"] == 1


def test_a_visitors_signals_join_the_customer_profile(shop: Runtime) -> None:
    send(shop, [{"type": "identify", "anonymousId": "ann", "userId": "u-ann",
                 "messageId": "4", "traits": {"email": "ann@example.com"}}])  # fmt: skip
    shop.pipeline.process()
    shop.pipeline.refresh_computed_traits()
    customer = traits_of(shop, "email:ann@example.com")
    assert customer["travel_reader"] is True and customer["on_mobile"] == "yes"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"signals": [{"name": "x", "when": {"colour": "red"}}]}, "unknown condition"),
        ({"signals": [{"name": "x", "when": {"device_type": "watch"}}]}, "must be one of"),
        ({"signals": [{"name": "X!", "when": {"path_prefix": "/"}}]}, "lower-case"),
        ({"categories": {"/t": "999999"}}, "not in taxonomy"),
        ({"categories": {"travel": "653"}}, "must start with '/'"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(
    shop: Runtime, document: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidField, match=message):
        signals.load_config(shop.store, document, datetime.now(UTC).replace(tzinfo=None))
