"""Personalisation on a real store: train → recommend, offers and the decisions made from
the pipeline's memory (eligibility, caps, consent, unknown visitors, the experiment kept
across sign-in), decisions recorded and their lift."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from tessera.app import create_app
from tessera.audiences import signals
from tessera.backend import RemoteBackend
from tessera.errors import InvalidRequest, NotFound
from tessera.personalize import decisions, offers, products
from tessera.personalize import recommendations as recs
from tessera.personalize.decisions import DecisionRequest
from tessera.personalize.offers import OfferSpec
from tessera.personalize.serving import Personalizer, preview
from tessera.results import wire
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN, basic_auth
from tests.integration.helpers import send
from tests.integration.test_backend_round_trip import Through

RUNNERS = [f"u{n}" for n in range(1, 7)]
READERS = [f"u{n}" for n in range(7, 13)]


def _track(user: str, event: str, n: int, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "properties": properties,
            "messageId": f"{user}-{event}-{n}"}  # fmt: skip


def _shop(runtime: Runtime) -> None:
    messages = []
    for n, user in enumerate(RUNNERS):
        messages.append(_track(user, "Product Viewed", n, product_id="shoes", name="Trail shoes",
                               category="running"))  # fmt: skip
        messages.append(_track(user, "Order Completed", n, products=[
            {"product_id": "socks", "name": "Socks", "category": "running"}]))  # fmt: skip
    for n, user in enumerate(READERS):
        messages.append(_track(user, "Product Viewed", n, product_id="book", category="books"))
        messages.append(_track(user, "Order Completed", n, products=[
            {"product_id": "lamp", "category": "books"}]))  # fmt: skip
    send(runtime, messages)
    runtime.pipeline.process()


def test_train_then_recommend_what_resembles_their_taste_never_what_they_just_bought(
    runtime: Runtime,
) -> None:
    _shop(runtime)
    trained = recs.train(runtime)
    assert (trained.products, trained.people, trained.interactions) == (4, 12, 24)
    found = recs.recommend(runtime, "user_id:u1", n=2)
    ids = [item.product_id for item in found.items]
    assert ids[0] == "shoes" and "socks" not in ids  # socks: bought just now
    assert found.items[0].reason == "similar to Socks (socks)"
    assert found.items[0].name == "Trail shoes" and found.items[0].category == "running"


def test_unavailable_products_from_the_catalogue_are_never_recommended(runtime: Runtime) -> None:
    _shop(runtime)
    recs.train(runtime)
    assert products.unavailable_products(runtime.store) == set()  # an empty catalogue: none
    runtime.store.execute(  # the catalogue's table (tessera/catalog), filled by hand here
        "INSERT INTO products (product_id, name, available, url, updated_at) VALUES "
        "('shoes', 'Trail Shoes X', FALSE, NULL, now()), "
        "('book', 'A Book', TRUE, 'https://x/book', now())"
    )
    assert products.unavailable_products(runtime.store) == {"shoes"}
    found = recs.recommend(runtime, "user_id:u1", n=3)
    assert "shoes" not in [item.product_id for item in found.items]
    reader = recs.recommend(runtime, "user_id:u7", n=3)
    book = next(item for item in reader.items if item.product_id == "book")
    assert (book.name, book.url) == ("A Book", "https://x/book")  # the catalogue's word
    # The decision API answers from memory, with the same catalogue's word.
    personalizer = Personalizer(runtime)
    personalizer.load()
    decided = _ask(personalizer, userId="u7", n=3)
    assert "shoes" not in [item.product_id for item in decided.recommendations]
    book = next(item for item in decided.recommendations if item.product_id == "book")
    assert (book.name, book.url) == ("A Book", "https://x/book")
    # The best hour also as people read it ("Monday 07:00 UTC"), the profile's own trait.
    assert decided.best_time is not None and decided.best_time.endswith(" UTC")


def _offer(runtime: Runtime, name: str, condition: str = "", **extra: Any) -> None:
    offers.create(runtime, OfferSpec(name=name, title=name.title(), condition=condition, **extra))


def _ask(personalizer: Personalizer, **given: Any) -> decisions.Decision:
    return personalizer.decide(DecisionRequest.model_validate(given))


def test_offers_follow_condition_priority_cap_consent_and_unknown_visitors(
    runtime: Runtime,
) -> None:
    _shop(runtime)
    send(runtime, [{"type": "identify", "userId": "u13", "messageId": "refuses",
                    "context": {"consent": {"categoryPreferences": {"personalization": False}}}},
                   _track("u13", "Product Viewed", 0, product_id="shoes")])  # fmt: skip
    runtime.pipeline.process()
    _offer(runtime, "runners", 'did "Product Viewed" where properties.product_id = "shoes"',
           priority=5)  # fmt: skip
    _offer(runtime, "everyone", priority=1)
    _offer(runtime, "once-a-day", "known", priority=10, cap_per_day=1)
    _offer(runtime, "email-only", priority=99, channel="email")
    recs.train(runtime)
    personalizer = Personalizer(runtime)
    personalizer.load()

    first = _ask(personalizer, userId="u1")
    assert first.personal and [o.name for o in first.offers] == ["once-a-day"]
    assert [o.name for o in _ask(personalizer, userId="u1").offers] == ["runners"]  # capped
    assert [o.name for o in _ask(personalizer, userId="u7").offers] == ["once-a-day"]
    assert [o.name for o in _ask(personalizer, userId="u7", channel="email").offers] == [
        "email-only"
    ]
    refused = _ask(personalizer, userId="u13")
    assert not refused.personal and "refused personalisation" in refused.reason
    assert [o.name for o in refused.offers] == ["everyone"] and refused.traits == {}
    unknown = _ask(personalizer, anonymousId="never-seen", page={"category": "books"})
    assert not unknown.personal and [o.name for o in unknown.offers] == ["everyone"]
    assert unknown.recommendations[0].reason == "popular in category books"

    personalizer.flush()
    recorded = decisions.recent(runtime.store, 20)
    assert len(recorded) == 6
    assert recorded[-1].offer == "once-a-day" and recorded[-1].eligible == [
        "everyone", "once-a-day", "runners"]  # fmt: skip
    assert preview(runtime, personalizer, "user_id:u1").offers[0].name == "runners"
    personalizer.flush()
    assert len(decisions.recent(runtime.store, 20)) == 6  # a preview is not recorded


def test_a_profile_new_since_the_refresh_is_evaluated_within_a_tick(runtime: Runtime) -> None:
    send(runtime, [_track("u0", "Product Viewed", 0, product_id="book")])
    runtime.pipeline.process()
    _offer(runtime, "runners", 'did "Product Viewed" where properties.product_id = "shoes"')
    personalizer = Personalizer(runtime)
    personalizer.load()
    send(runtime, [_track("u1", "Product Viewed", 0, product_id="shoes")])
    runtime.pipeline.process()
    assert _ask(personalizer, userId="u1").offers == []  # not evaluated yet: no guess
    personalizer.tick()
    assert [o.name for o in _ask(personalizer, userId="u1").offers] == ["runners"]


def test_a_bad_condition_is_refused_with_the_segment_languages_message(
    runtime: Runtime,
) -> None:
    with pytest.raises(InvalidRequest, match="line 1"):
        _offer(runtime, "broken", "traits.country = ")
    with pytest.raises(NotFound):
        offers.get(runtime.store, "broken")


def test_the_experiment_variant_carries_over_when_the_visitor_signs_in(runtime: Runtime) -> None:
    send(runtime, [_track("u50", "Product Viewed", 0, product_id="book")])
    for n in range(40):
        send(runtime, [{"type": "track", "anonymousId": f"cookie-{n}", "event": "Product Viewed",
                        "properties": {"product_id": "book"}, "messageId": f"c{n}"}])  # fmt: skip
    runtime.pipeline.process()
    _offer(runtime, "a", weight=1.0)
    _offer(runtime, "b", weight=1.0)
    personalizer = Personalizer(runtime)
    personalizer.load()
    before = {n: _ask(personalizer, anonymousId=f"cookie-{n}", strategy="experiment")
              for n in range(40)}  # fmt: skip
    assert {d.variant for d in before.values()} >= {"a", "b"}
    # Each cookie signs in as a person who already had a profile of their own: a merge.
    send(runtime, [{"type": "track", "userId": f"user-{n}", "event": "Signed Up",
                    "messageId": f"s{n}"} for n in range(40)])  # fmt: skip
    runtime.pipeline.process()
    send(runtime, [{"type": "identify", "userId": f"user-{n}", "anonymousId": f"cookie-{n}",
                    "messageId": f"i{n}"} for n in range(40)])  # fmt: skip
    runtime.pipeline.process()
    personalizer.refresh()
    for n, earlier in before.items():
        after = _ask(personalizer, userId=f"user-{n}", strategy="experiment")
        assert after.variant == earlier.variant, n


def test_lift_compares_the_people_shown_an_offer_with_those_held_out(runtime: Runtime) -> None:
    people = [f"p{n}" for n in range(60)]
    send(runtime, [_track(p, "Product Viewed", 0, product_id="book") for p in people])
    runtime.pipeline.process()
    _offer(runtime, "deal")
    personalizer = Personalizer(runtime)
    personalizer.settings = personalizer.settings.model_copy(update={"offer_holdout_share": 0.5})
    personalizer.load()
    chosen = {p: _ask(personalizer, userId=p, strategy="experiment") for p in people}
    personalizer.flush()
    buyers = [p for p in people if p.endswith(("1", "3", "5"))]
    send(runtime, [_track(p, "Order Completed", 1, revenue=10) for p in buyers])
    runtime.pipeline.process()
    [row] = decisions.lift(runtime.store)
    shown = [p for p, d in chosen.items() if d.offers]
    held = [p for p, d in chosen.items() if d.variant == "holdout"]
    assert (row.offer, row.shown, row.holdout) == ("deal", len(shown), len(held))
    assert row.shown_converted == len(set(shown) & set(buyers))
    assert row.holdout_converted == len(set(held) & set(buyers))


def test_every_personalisation_model_round_trips_the_server_json(tmp_path: Path) -> None:
    """The CLI's RemoteBackend parses each answer into the model the LocalBackend returns,
    and the model dumps back to the same JSON (models built without validation included)."""
    app = create_app(Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN))
    with TestClient(app) as client:
        through = Through(client)
        backend = RemoteBackend("http://testserver", ADMIN_TOKEN, transport=through)
        checked: list[str] = []

        def same(name: str, call: Callable[[], object]) -> None:
            result = call()
            assert orjson.loads(wire(result)) == through.last, name
            checked.append(name)

        key = backend.create_source("web-shop", "web").write_key
        pairs = (("u1", "shoes"), ("u2", "shoes"), ("u2", "socks"))
        batch = [
            _track(user, "Product Viewed", 0, product_id=product, name=product.title())
            for user, product in pairs
        ]
        auth = {"Authorization": basic_auth(key)}
        sent = client.post("/v1/batch", content=orjson.dumps({"batch": batch}), headers=auth)
        assert sent.status_code == 200
        backend.process()
        same("train_recommendations", backend.train_recommendations)
        same("recommendations_status", backend.recommendations_status)
        same("recommend", lambda: backend.recommend("user_id:u1", 3))
        spec = OfferSpec(name="shoes", title="Shoes", content={"coupon": "X"}, priority=2,
                         condition='did "Product Viewed"', cap_per_day=2)  # fmt: skip
        same("create_offer", lambda: backend.create_offer(spec))
        same("list_offers", backend.list_offers)
        same("show_offer", lambda: backend.show_offer("shoes"))
        same("preview_decision", lambda: backend.preview_decision("user_id:u1", "web", None))
        same("create_publishable_key", lambda: backend.create_publishable_key("web-shop"))
        public = through.last["key"]
        key_id = through.last["id"]
        assert (
            client.get("/v1/personalize", params={"userId": "u1", "key": public}).status_code == 200
        )
        same("list_publishable_keys", backend.list_publishable_keys)
        same("recent_decisions", lambda: backend.recent_decisions(5))
        same("offer_lift", lambda: backend.offer_lift(None, "Order Completed"))
        same("caller", lambda: backend.caller("user_id:u1"))
        same("revoke_publishable_key", lambda: backend.revoke_publishable_key(key_id))
        same("delete_offer", lambda: backend.delete_offer("shoes"))
        backend.close()
    assert len(checked) == 14


def test_a_first_time_visitor_from_a_travel_campaign_gets_the_travel_offer_and_keeps_it(
    runtime: Runtime,
) -> None:
    """The DMP side decides for cookies: a signal trait from the campaign (UTM) selects the
    visitor; once they sign in, the trait and so the offer are their profile's."""
    landing = {"type": "page", "anonymousId": "cookie-1", "messageId": "p1",
               "properties": {"path": "/", "url": "https://shop.example/"},
               "context": {"campaign": {"name": "travel-spring", "source": "google"}}}  # fmt: skip
    send(runtime, [landing, _track("u0", "Product Viewed", 0, product_id="x")])
    runtime.pipeline.process()
    document = {"signals": [{"name": "travel_campaign", "when": {"utm_campaign": "travel-spring"},
                             "lifetime_days": 30}]}  # fmt: skip
    signals.load_config(runtime.store, document, datetime.now(UTC).replace(tzinfo=None))
    runtime.pipeline.refresh_computed_traits()
    _offer(runtime, "travel", "computed.travel_campaign = true", priority=10)
    _offer(runtime, "welcome", priority=1)
    personalizer = Personalizer(runtime)
    personalizer.load()
    first = _ask(personalizer, anonymousId="cookie-1")
    assert first.personal and [o.name for o in first.offers] == ["travel"]
    assert [o.name for o in _ask(personalizer, anonymousId="cookie-2").offers] == ["welcome"]
    send(runtime, [{"type": "identify", "anonymousId": "cookie-1", "userId": "jane",
                    "messageId": "i1", "traits": {"email": "jane@example.com"}}])  # fmt: skip
    runtime.pipeline.process()
    runtime.pipeline.refresh_computed_traits()
    personalizer.refresh()
    assert [o.name for o in _ask(personalizer, userId="jane").offers] == ["travel"]


def test_a_decision_names_only_the_segments_the_person_is_in_now(runtime: Runtime) -> None:
    """Membership is history (one row per stay): a segment the person left is not theirs."""
    send(runtime, [{"type": "identify", "userId": "u1", "traits": {"city": "Lyon"},
                    "messageId": "lyon"}])  # fmt: skip
    runtime.pipeline.process()
    service.create(runtime.store, "lyon", 'traits.city = "Lyon"', set(), exposed=True)
    personalizer = Personalizer(runtime)
    personalizer.load()
    assert _ask(personalizer, userId="u1").segments == ["lyon"]
    send(runtime, [{"type": "identify", "userId": "u1", "traits": {"city": "Paris"},
                    "messageId": "paris"}])  # fmt: skip
    runtime.pipeline.process()
    runtime.pipeline.flush_segments()
    assert runtime.store.fetch_one(
        "SELECT count(*) FROM segment_members WHERE left_at IS NOT NULL"
    ) == (1,)
    personalizer.refresh()
    assert _ask(personalizer, userId="u1").segments == []


def _profile_of(runtime: Runtime, user: str) -> str:
    row = runtime.store.fetch_one(
        "SELECT profile_id FROM identities WHERE type = 'user_id' AND value = ?", [user]
    )
    assert row is not None
    return str(row[0])


def test_between_refreshes_the_decision_memory_follows_the_profiles_the_pipeline_changed(
    runtime: Runtime,
) -> None:
    """The pipeline's change feed (`pipeline/changes.py`): a batch and its streaming
    segment flush name the profiles they changed, and the next tick re-reads just their
    eligibility and segments; a refresh over everyone says everyone."""
    send(runtime, [{"type": "identify", "userId": user, "traits": {"city": "Lyon"},
                    "messageId": f"lyon-{user}"} for user in ("u1", "u2")])  # fmt: skip
    runtime.pipeline.process()
    service.create(runtime.store, "lyon", 'traits.city = "Lyon"', set(), exposed=True)
    _offer(runtime, "lyon-offer", 'traits.city = "Lyon"')
    personalizer = Personalizer(runtime)
    personalizer.load()
    for user in ("u1", "u2"):
        decision = _ask(personalizer, userId=user)
        assert decision.segments == ["lyon"] and [o.name for o in decision.offers] == ["lyon-offer"]
    feed = runtime.pipeline.changes
    mark = feed.mark
    send(runtime, [{"type": "identify", "userId": "u1", "traits": {"city": "Paris"},
                    "messageId": "paris"}])  # fmt: skip
    runtime.pipeline.process(sweep=False)  # batches and their segment flush, nothing more
    assert feed.since(mark)[1] == {_profile_of(runtime, "u1")}
    assert _ask(personalizer, userId="u1").segments == ["lyon"]  # the memory, until a tick
    personalizer.tick()
    moved = _ask(personalizer, userId="u1")
    assert moved.segments == [] and moved.offers == []
    stayed = _ask(personalizer, userId="u2")
    assert stayed.segments == ["lyon"] and [o.name for o in stayed.offers] == ["lyon-offer"]
    mark = feed.mark
    runtime.pipeline.refresh_computed_traits(full=True)  # the rebuild's: every row replaced
    assert feed.since(mark) == (feed.mark, None)


def test_a_refresh_names_only_the_profiles_it_moved_and_the_memory_follows_them(
    runtime: Runtime,
) -> None:
    """The loop's whole-population refresh between days' sweeps posts to the change feed
    the profiles whose computed traits changed and those its segment sweep moved (a time
    window slid), not everyone: the decision memory re-reads those alone."""
    long_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    send(runtime, [
        {"type": "identify", "userId": "u1", "messageId": "i1"},
        {"type": "identify", "userId": "u2", "messageId": "i2"},
        {**_track("u1", "Trial Started", 0), "timestamp": long_ago},
    ])  # fmt: skip
    runtime.pipeline.process()
    # Created as of a day and a half ago, when u1's trial was half a day old: a member.
    service.create(runtime.store, "trial-today", 'did "Trial Started" in last 1 day', set(),
                   datetime.now(UTC) - timedelta(hours=36), exposed=True)  # fmt: skip
    personalizer = Personalizer(runtime)
    personalizer.load()
    assert _ask(personalizer, userId="u1").segments == ["trial-today"]
    feed = runtime.pipeline.changes
    mark = feed.mark
    runtime.pipeline.refresh_computed_traits()  # its sweep: the window slid past u1's trial
    assert feed.since(mark) == (feed.mark, {_profile_of(runtime, "u1")})
    personalizer.tick()
    assert _ask(personalizer, userId="u1").segments == []
    mark = feed.mark
    runtime.pipeline.refresh_computed_traits()  # nothing changed: nobody named
    assert feed.since(mark) == (mark, frozenset())


def test_before_the_pipeline_memory_loads_a_decision_reads_the_store_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the pipeline's memory is loaded (the first seconds after a start), a decision
    reads the profile from the store, on a worker thread: on the event loop its queries held
    every other request (measured up to 1.1 s on the 100k-profile benchmark). The person is
    still answered personally."""
    from tessera.pipeline import Pipeline

    app = create_app(Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN))
    with TestClient(app) as client:
        backend = RemoteBackend("http://testserver", ADMIN_TOKEN, transport=Through(client))
        key = backend.create_source("web-shop", "web").write_key
        batch = [_track("u1", "Product Viewed", 0, product_id="shoes", name="Shoes")]
        sent = client.post(
            "/v1/batch",
            content=orjson.dumps({"batch": batch}),
            headers={"Authorization": basic_auth(key)},
        )
        assert sent.status_code == 200
        backend.process()
        public = backend.create_publishable_key("web-shop").key
        on_a_loop: list[bool] = []
        decide = Personalizer.decide

        def watched(self: Personalizer, *args: Any, **kwargs: Any) -> decisions.Decision:
            try:
                asyncio.get_running_loop()
                on_a_loop.append(True)
            except RuntimeError:  # no loop runs in this thread: a worker's
                on_a_loop.append(False)
            return decide(self, *args, **kwargs)

        monkeypatch.setattr(Personalizer, "decide", watched)
        monkeypatch.setattr(Pipeline, "memory_loaded", property(lambda self: False))
        answer = client.get("/v1/personalize", params={"userId": "u1", "key": public})
        backend.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["personal"] is True
    assert on_a_loop == [False]
