"""The decision API's memory, and the decision itself.

`Personalizer` holds what a decision needs, so a request is answered without SQL:

- the person, from the pipeline's memory (`find_in_memory`, `read_profile`): traits,
  computed traits (best channel and hour, signal traits), consent, merged ids: current
  within the pipeline's freshness;
- each offer's eligible people and each person's segment memberships (exposable names,
  popularity per segment): the offers' conditions compiled like segments
  (`compile_segments`) and run over everyone when the pipeline changed everyone (the
  day's first refresh, a rebuild) or every TESSERA_PERSONALIZE_REFRESH_SECONDS (time
  windows slide); between those, every tick (`TICK_SECONDS`) re-reads just the profiles
  the pipeline changed since (its change feed, `pipeline/changes.py`: what batches
  touched, and what its whole-population refreshes changed or moved). A profile never
  evaluated yet is evaluated alone within a tick of its first request, which meanwhile
  gets only the offers for everyone;
- the recommendation model and each person's product history (new interactions read every
  tick), publishable keys, today's shows per person and offer (the caps).

A background thread (`start`) keeps it current, writes the decisions recorded since the
last tick, and retrains the recommendation model every
TESSERA_RECOMMENDATIONS_INTERVAL_MINUTES.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import pyarrow.compute as pc

from tessera.catalog.keys import ProductKeys
from tessera.context import Context
from tessera.errors import InvalidField, InvalidPublishableKey, NotFound, TesseraError
from tessera.events.timestamps import iso_utc, utc_now
from tessera.identity import lookup
from tessera.identity.identifiers import Identifier, normalise
from tessera.personalize import (
    callcentre,
    decisions,
    exposure,
    interactions,
    itemsim,
    keys,
    offers,
    products,
)
from tessera.personalize import recommendations as recs
from tessera.personalize.callcentre import CallerCard
from tessera.personalize.decisions import DecidedOffer, Decision, DecisionRequest, Record
from tessera.personalize.itemsim import ItemModel
from tessera.personalize.offers import Offer
from tessera.personalize.recommendations import RecommendedProduct
from tessera.personalize.strategies import Candidate, Strategy, choose
from tessera.privacy.keys import hash_secret
from tessera.profiles.consent import ENRICHMENT_PURPOSE, allows
from tessera.profiles.view import profile_from_store
from tessera.segments.compiler import compile_segments
from tessera.segments.service import exposed_names
from tessera.segments.tree import Node
from tessera.store import Store

log = logging.getLogger(__name__)
TICK_SECONDS = 0.5
#: recommendations kept per person (`_recommend`); past it the cache starts afresh
MAX_CACHED = 500_000
NO_HISTORY = recs.History()  # never changed: what a visitor without a profile has
NOT_PERSONAL_REASONS = {
    "unknown": "unknown visitor: the default answer",
    "refused": "the person refused personalisation: the default answer",
}


@dataclass
class _State:
    """One consistent view, swapped whole by a refresh (readers never see half of one)."""

    offers: list[tuple[Offer, Node | None]] = field(default_factory=list)
    eligible: dict[str, frozenset[str]] = field(default_factory=dict)
    evaluated: frozenset[str] = frozenset()
    memberships: dict[str, tuple[str, ...]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    unavailable: frozenset[str] = frozenset()
    #: what the catalogue says of each product (a recommendation answers it: name, full
    #: category path, url, image)
    catalogue: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: segments whose names a decision answers: flagged exposed, or named in the setting
    exposed_segments: frozenset[str] = frozenset()
    #: traits a decision answers (traits.NAME, computed.NAME): flagged, or in the setting
    exposed_traits: tuple[str, ...] = ()


class _Cached(NamedTuple):
    history: recs.History
    model: ItemModel
    unavailable: frozenset[str]
    n: int
    scopes: tuple[str, ...]
    found: list[RecommendedProduct]


class Personalizer:
    def __init__(self, context: Context) -> None:
        self._context = context
        self.settings = context.settings
        self._products = ProductKeys.of_settings(context.settings)
        self._state = _State()
        #: profile → offers, and profile → segments, evaluated since the last refresh
        self._late: dict[str, frozenset[str]] = {}
        self._late_members: dict[str, tuple[str, ...]] = {}
        #: the pipeline's change feed, read up to this mark (`pipeline/changes.py`)
        self._mark = 0
        self._interactions_mark = -1  # the feed's mark when interactions were last read
        self._follow_due = 0.0  # monotonic time the feed is next followed
        self._pending: set[str] = set()
        self._records: list[Record] = []
        self._shows: dict[tuple[str, str], int] = defaultdict(int)
        self._shows_day = utc_now().date()
        self._experiment_keys: dict[str, str] = {}
        self.model = ItemModel()
        self._histories: dict[str, recs.History] = {}
        self._recommended: dict[str, _Cached] = {}
        self._last_seq = 0
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshed_at = 0.0
        self._refresh_cost = 0.0
        self._trained_at: float | None = None  # monotonic; None: no model yet
        self._rng = random.Random()
        self._last_failure = ""
        self.loaded = False

    # -- keeping current ----------------------------------------------------------------

    def load(self) -> None:
        """Everything from the store (the thread does this first; tests and the CLI call it)."""
        store = self._context.store
        # The keys first: a decision asked while the rest loads is answered (by default),
        # not refused with a 401 a client could take for a bad key.
        self._state = _State(keys=keys.active(store))
        self.model = recs.load(store)
        row = store.fetch_one(
            "SELECT epoch(now()::TIMESTAMP - max(trained_at)) FROM recommendation_models"
        )
        if row and row[0] is not None:  # the stored model's age counts toward the schedule
            self._trained_at = time.monotonic() - float(row[0])
        read = interactions.read(store, products=self._products)
        self._histories = recs.histories(read.interactions)
        self._last_seq = read.last_seq
        today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
        self._shows = defaultdict(int, decisions.today_counts(store, today))
        self._shows_day = today.date()
        # Each profile decided before is its own experiment key, so a visitor decided before
        # a restart keeps their variant when they sign in after it.
        self._experiment_keys = {
            row[0]: row[0]
            for row in store.fetch_all(
                "SELECT DISTINCT profile_id FROM decisions WHERE profile_id IS NOT NULL"
            )
        }
        self.refresh()
        self.loaded = True

    def refresh(self) -> None:
        """Offers, their eligible people, memberships, keys and unavailable products."""
        with self._refreshing:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        started = time.monotonic()
        # The mark before reading: what changes while this reads is read again after.
        mark = self._context.pipeline.changes.mark
        self._refresh()
        self._mark = mark
        self._refresh_cost = time.monotonic() - started

    def definitions_changed(self) -> None:
        """Offers, exposure or keys changed (`Context.definitions_changed`): refreshed now
        when this personalizer serves (started); one that does not reads them when it
        loads."""
        if self._thread is not None:
            self.refresh()

    def _enrichment_policy(self) -> str:
        return self._context.settings.consent_policy(ENRICHMENT_PURPOSE)

    def _refresh(self) -> None:
        store = self._context.store
        found = offers.trees(store)
        conditional = [(offer, tree) for offer, tree in found if tree is not None]
        evaluated, eligible = self._offers_of(conditional, None)
        memberships = _memberships(store, None)
        if not conditional:
            evaluated = (
                store.fetch_arrow("SELECT profile_id FROM profile_summaries").column(0).to_pylist()
            )
        self._state = _State(
            offers=found,
            eligible={name: frozenset(ids) for name, ids in eligible.items()},
            evaluated=frozenset(evaluated),
            memberships=memberships,
            keys=keys.active(store),
            unavailable=frozenset(products.unavailable_products(store)),
            catalogue=products.product_details(store, None),
            exposed_segments=frozenset(
                [*exposed_names(store), *self.settings.personalize_exposed_segments]
            ),
            exposed_traits=tuple(
                sorted({*exposure.flagged(store), *self.settings.personalize_exposed_traits})
            ),
        )
        self._late = {}
        self._late_members = {}
        self._refreshed_at = time.monotonic()

    def tick(self) -> None:
        """Write the decisions recorded; follow what the pipeline changed (everyone, or
        just the profiles it changed); evaluate the profiles asked for before they were
        evaluated; read the new interactions."""
        self.flush()
        with self._refreshing:
            mark, changed = self._context.pipeline.changes.since(self._mark)
            with self._lock:
                pending, self._pending = frozenset(self._pending), set()
            if changed is None:  # everyone may have changed
                if time.monotonic() - self._refreshed_at >= 9 * self._refresh_cost:
                    self._refresh_locked()
                else:  # later (the feed says None until then); those asked for now
                    self._evaluate(pending, frozenset())
            elif time.monotonic() < self._follow_due:  # the last one was slow: spaced out
                self._evaluate(pending, frozenset())
                mark = self._mark
            else:
                started = time.monotonic()
                self._evaluate(changed | pending, changed)
                self._mark = mark
                finished = time.monotonic()
                # At most a tenth of the time, as the refresh over everyone: under a heavy
                # load the changed profiles are read in larger, fewer rounds.
                self._follow_due = finished + 9 * (finished - started)
        if self._interactions_mark == mark:
            return  # no batch since the last read: no new interaction either
        self._interactions_mark = mark
        read = interactions.read(
            self._context.store, since_seq=self._last_seq, products=self._products
        )
        if read.interactions:
            histories = dict(self._histories)
            for item in read.interactions:
                history = recs.History(
                    dict(histories[item.person].weights), dict(histories[item.person].bought)
                ) if item.person in histories else recs.History()  # fmt: skip
                history.add(item)
                histories[item.person] = history
            self._histories = histories
        self._last_seq = read.last_seq

    def _evaluate(self, profiles: frozenset[str], memberships: frozenset[str]) -> None:
        """The offers `profiles` are eligible for, and the segments of `memberships`, read
        now: they take precedence over the last refresh's (`_eligible`, `decide_for`)."""
        conditional = [(offer, tree) for offer, tree in self._state.offers if tree is not None]
        if profiles and conditional:
            _, eligible = self._offers_of(conditional, profiles)
            offers_of: dict[str, set[str]] = {profile: set() for profile in profiles}
            for name, people in eligible.items():
                for profile in people:
                    offers_of.setdefault(profile, set()).add(name)
            self._late.update({p: frozenset(names) for p, names in offers_of.items()})
        if memberships:
            segments: dict[str, tuple[str, ...]] = dict.fromkeys(memberships, ())
            segments.update(_memberships(self._context.store, memberships))
            self._late_members.update(segments)  # one update: a reader sees before or after

    def _offers_of(
        self, conditional: list[tuple[Offer, Node]], profiles: frozenset[str] | None
    ) -> tuple[list[str], dict[str, list[str]]]:
        """(the profiles evaluated, and for each conditional offer the profiles eligible
        for it), for these profiles or everyone: the offers' conditions compiled together,
        like segments, and read column-wise (Python objects only for the ids: a row at a
        time, everyone's took most of a refresh's 0.85 s of GIL on 100k profiles)."""
        if not conditional:
            return [], {}
        compiled = compile_segments(
            [tree for _, tree in conditional],
            now=_now_text(),
            profiles=None if profiles is None else sorted(profiles),
            products=self._products,
            enrichment_policy=self._enrichment_policy(),
        )
        table = self._context.store.fetch_arrow(compiled.sql, compiled.parameters)
        ids = table.column(0)
        eligible = {
            offer.name: pc.filter(ids, table.column(i + 1)).to_pylist()  # null: not eligible
            for i, (offer, _) in enumerate(conditional)
        }
        return ids.to_pylist(), eligible

    def flush(self) -> None:
        with self._lock:
            records, self._records = self._records, []
        decisions.save(self._context.store, records)

    def retrain(self) -> recs.Trained:
        trained = recs.train(self._context)
        self.model = recs.load(self._context.store)
        self._trained_at = time.monotonic()
        return trained

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-personalize", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.flush()
        except Exception:  # closing: the store may be gone; the log says what was lost
            log.exception("decisions not written at shutdown")

    def _run(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                if first:
                    self.load()
                    first = False
                interval = self.settings.recommendations_interval_minutes * 60
                now = time.monotonic()
                if interval and (self._trained_at is None or now - self._trained_at >= interval):
                    self.retrain()
                # A refresh runs the offers' conditions over everyone: on a large store it
                # costs seconds of CPU, so the next waits at least 9 times as long (at most a
                # tenth of the time), whatever the setting asks. Between refreshes, the
                # tick follows the profiles the pipeline changes.
                wait = max(self.settings.personalize_refresh_seconds, 9 * self._refresh_cost)
                if now - self._refreshed_at >= wait:
                    self.refresh()
                self.tick()
            except Exception as error:  # keep serving the memory we have; try again
                if repr(error) != self._last_failure:  # once per distinct failure
                    log.exception("personalisation refresh failed")
                self._last_failure = repr(error)
            else:
                self._last_failure = ""
            self._stopping.wait(TICK_SECONDS)

    # -- answering ----------------------------------------------------------------------

    def authenticate(self, key: str | None) -> str:
        """The source id of a publishable key; InvalidPublishableKey for anything else."""
        if not key or not keys.looks_publishable(key):
            raise InvalidPublishableKey(
                "the decision API takes a publishable key (tpk_...), as HTTP Basic user name "
                "or `key=`; create one with `tessera personalize create-key SOURCE` (write "
                "keys and the admin token are refused)"
            )
        source_id = self._state.keys.get(hash_secret(key))
        if source_id is None:
            raise InvalidPublishableKey(
                "the publishable key is not known, was revoked, or its source is disabled"
            )
        return source_id

    def decide(
        self, request: DecisionRequest, *, source_id: str | None = None, record: bool = True
    ) -> Decision:
        """The decision for the visitor the request names (see the module)."""
        visitor, profile_id = self._find(request)
        return self.decide_for(profile_id, request, visitor, source_id=source_id, record=record)

    def decide_for(
        self,
        profile_id: str | None,
        request: DecisionRequest,
        visitor: str,
        *,
        source_id: str | None = None,
        record: bool = True,
    ) -> Decision:
        now = utc_now()
        state = self._state
        strategy: Strategy = request.strategy or self.settings.offer_strategy
        n = self.settings.personalize_recommendations if request.n is None else request.n
        profile = self._profile(profile_id) if profile_id else None
        if profile is None:
            why = "unknown"
        elif not allows(profile.get("consent") or {}, "personalisation", "unless_refused"):
            why = "refused"
        else:
            why = ""
        live = [o for o in state.offers if _active(o[0], request.channel, now)]
        if why:  # the default answer: nothing about the person is used or answered
            candidates = [offer for offer, tree in live if tree is None]
            choice = choose(strategy if strategy != "experiment" else "priority",
                            [_candidate(o) for o in candidates], key=visitor,
                            holdout_share=0.0, rng=self._rng)  # fmt: skip
            found = self._recommend("", NO_HISTORY, state, n, _page_scopes(request))
            decision = _decision(
                False, NOT_PERSONAL_REASONS[why], {}, [], live, choice, found, None, None, None,
                now,
            )  # fmt: skip
            self._record(decision, None, visitor, source_id, request.channel, strategy, [],
                         record)  # fmt: skip
            return decision
        assert profile is not None and profile_id is not None
        profile_id = profile["profile_id"]
        members = [profile_id, *profile.get("merged_ids", [])]
        eligible_names = self._eligible(profile_id, state)
        candidates = [
            offer
            for offer, tree in live
            if (tree is None or offer.name in eligible_names)
            and not self._capped(offer, profile_id, now)
        ]
        key = self._experiment_key(profile_id, members)
        choice = choose(strategy, [_candidate(o) for o in candidates], key=key,
                        holdout_share=self.settings.offer_holdout_share, rng=self._rng)  # fmt: skip
        history = self._history(members)
        memberships = self._late_members.get(profile_id)
        if memberships is None:
            memberships = state.memberships.get(profile_id, ())
        scopes = tuple(f"segment:{name}" for name in memberships) + _page_scopes(request)
        found = self._recommend(profile_id, history, state, n, scopes)
        computed = profile.get("computed_traits") or {}
        exposed = state.exposed_segments
        decision = _decision(
            True, choice.reason,
            _exposed_traits(profile, state.exposed_traits),
            [name for name in memberships if name in exposed], live, choice, found,
            _text(computed.get("best_channel")), _hour(computed.get("best_hour_of_week")),
            _text(computed.get("best_time")), now,
        )  # fmt: skip
        if choice.offer and record:
            self._count_show(profile_id, choice.offer, now)
        self._record(decision, profile_id, visitor, source_id, request.channel, strategy,
                     [offer.name for offer in candidates], record)  # fmt: skip
        return decision

    # -- the parts ----------------------------------------------------------------------

    def _find(self, request: DecisionRequest) -> tuple[str, str | None]:
        tried = [("user_id", request.user_id), ("anonymous_id", request.anonymous_id)]
        given = [(kind, value) for kind, value in tried if value and value.strip()]
        if not given:
            raise _missing_visitor()
        visitor = f"{given[0][0]}:{given[0][1]}"
        pipeline = self._context.pipeline
        for kind, raw in given:
            value = normalise(kind, raw)
            if value is None:
                continue
            identifier = Identifier(kind, value)
            try:
                found = pipeline.find_in_memory(identifier)
                if found is None:  # memory not loaded in this process: the store
                    found = lookup.find_profile(self._context.store, identifier)
                return visitor, found
            except NotFound:
                continue
        return visitor, None

    def _profile(self, profile_id: str) -> dict[str, Any] | None:
        found = self._context.pipeline.read_facts(profile_id)
        if found is not None:
            return found
        try:
            return profile_from_store(self._context.store, profile_id)
        except NotFound:
            return None

    def _recommend(
        self, profile_id: str, history: recs.History, state: _State, n: int, scopes: tuple[str, ...]
    ) -> list[RecommendedProduct]:
        """The person's recommendations, from a cache that holds while nothing they depend
        on changed: their history (replaced, never changed, when they interact), the model
        (replaced by a retrain), the unavailable products (replaced by a refresh). The
        first answer for a person costs history x neighbours steps; the next, a look-up."""
        model = self.model
        cached = self._recommended.get(profile_id)
        if (
            cached is not None
            and cached.history is history
            and cached.model is model
            and cached.unavailable is state.unavailable
            and (cached.n, cached.scopes) == (n, scopes)
        ):
            return cached.found
        exclude = set(state.unavailable) | history.recently_bought(
            time.time(), self.settings.recommendations_exclude_bought_days
        )
        found = [
            recs.as_product(model, item, state.catalogue.get(item.product_id))
            for item in itemsim.recommend(
                model, history.weights, n=n, exclude=exclude, scopes=scopes
            )
        ]
        if len(self._recommended) >= MAX_CACHED:
            self._recommended = {}
        self._recommended[profile_id] = _Cached(history, model, state.unavailable, n, scopes, found)
        return found

    def _eligible(self, profile_id: str, state: _State) -> frozenset[str]:
        late = self._late.get(profile_id)
        if late is not None:
            return late
        if profile_id in state.evaluated:
            return frozenset(
                name for name, people in state.eligible.items() if profile_id in people
            )
        with self._lock:
            self._pending.add(profile_id)
        return frozenset()

    def _capped(self, offer: Offer, profile_id: str, now: datetime) -> bool:
        if offer.cap_per_day is None:
            return False
        if now.date() != self._shows_day:
            return False
        return self._shows.get((profile_id, offer.name), 0) >= offer.cap_per_day

    def _count_show(self, profile_id: str, offer: str, now: datetime) -> None:
        with self._lock:
            if now.date() != self._shows_day:
                self._shows = defaultdict(int)
                self._shows_day = now.date()
            self._shows[(profile_id, offer)] += 1

    def _experiment_key(self, profile_id: str, members: list[str]) -> str:
        """The id the experiment hashes: the first profile id this person was decided
        under, so an anonymous visitor keeps their variant when they sign in and merge."""
        for member in members:
            key = self._experiment_keys.get(member)
            if key is not None:
                self._experiment_keys.setdefault(profile_id, key)
                return key
        self._experiment_keys[profile_id] = profile_id
        return profile_id

    def _history(self, members: list[str]) -> recs.History:
        found = [self._histories[m] for m in members if m in self._histories]
        if not found:
            return NO_HISTORY
        if len(found) == 1:
            return found[0]
        merged = recs.History()
        for history in found:
            for product, weight in history.weights.items():
                merged.weights[product] = merged.weights.get(product, 0.0) + weight
            for product, at in history.bought.items():
                merged.bought[product] = max(merged.bought.get(product, 0.0), at)
        return merged

    def _record(
        self,
        decision: Decision,
        profile_id: str | None,
        visitor: str,
        source_id: str | None,
        channel: str,
        strategy: str,
        eligible: list[str],
        record: bool,
    ) -> None:
        if not record:
            return
        offer = decision.offers[0].name if decision.offers else None
        row = (
            utc_now(), profile_id, visitor[:300], source_id, channel, strategy, offer,
            decision.variant, decision.reason[:500], orjson.dumps(eligible).decode(),
            orjson.dumps([r.product_id for r in decision.recommendations]).decode(),
            decision.personal,
        )  # fmt: skip
        with self._lock:
            self._records.append(row)


def _memberships(store: Store, profiles: frozenset[str] | None) -> dict[str, tuple[str, ...]]:
    """The segments each profile is in now (of these profiles, or everyone's), by name.

    Grouped in SQL by the set of segments, of which there are few: each set becomes one
    tuple shared by its profiles. A Python row per membership was a refresh's
    second-largest cost (0.38 s of GIL on 100k profiles); a tuple per profile converted in
    one call held the GIL 0.29 s at a stretch."""
    among = "" if profiles is None else "AND m.profile_id IN (SELECT unnest($ids)) "
    table = store.fetch_arrow(
        "SELECT names, list(profile_id) FROM (SELECT m.profile_id, list(s.name ORDER BY "
        "s.name) AS names FROM segment_members m JOIN segments s ON s.id = m.segment_id "
        f"WHERE m.left_at IS NULL {among}GROUP BY m.profile_id) GROUP BY names",
        None if profiles is None else {"ids": sorted(profiles)},
    )
    found: dict[str, tuple[str, ...]] = {}
    for names, people in zip(table.column(0), table.column(1), strict=True):
        found.update(dict.fromkeys(people.values.to_pylist(), tuple(names.as_py())))
        time.sleep(0)  # a waiting request runs between the sets
    return found


def _missing_visitor() -> TesseraError:
    return InvalidField(
        "a decision needs anonymousId or userId (the visitor to decide for)",
        field="anonymousId",
    )


def _now_text() -> str:
    return utc_now().isoformat()


def _active(offer: Offer, channel: str, now: datetime) -> bool:
    if offer.channel not in ("any", channel):
        return False
    starts = _parse(offer.starts_at)
    ends = _parse(offer.ends_at)
    return (starts is None or starts <= now) and (ends is None or now < ends)


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.removesuffix("Z")) if text else None


def _candidate(offer: Offer) -> Candidate:
    return Candidate(offer.name, offer.priority, offer.weight)


def _page_scopes(request: DecisionRequest) -> tuple[str, ...]:
    """A product category the page names (`page.category`, or the path's first part)."""
    category = request.page.get("category")
    if not isinstance(category, str) or not category:
        path = request.page.get("path")
        category = path.strip("/").split("/")[0] if isinstance(path, str) else None
    return (f"category:{category}",) if category else ()


def _exposed_traits(profile: dict[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    traits = profile.get("traits") or {}
    computed = profile.get("computed_traits") or {}
    exposed: dict[str, Any] = {}
    for name in allowed:
        where, _, key = name.partition(".")
        if where == "traits" and key in traits:
            exposed[key] = traits[key]
        elif where == "computed" and key in computed:
            exposed[key] = computed[key]
    return exposed


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and value != "" else None


def _hour(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and 0 <= value < 168:
        return int(value)
    return None


def _decision(
    personal: bool,
    reason: str,
    traits: dict[str, Any],
    segments: list[str],
    live: list[tuple[Offer, Node | None]],
    choice: Any,
    found: list[RecommendedProduct],
    best_channel: str | None,
    best_hour: int | None,
    best_time: str | None,
    now: datetime,
) -> Decision:
    # Built with model_construct: every value is already typed here, and validating the
    # same answer again cost a third of a decision's time (cProfile).
    chosen = [
        DecidedOffer.model_construct(
            name=offer.name,
            title=offer.title,
            content=offer.content,
            channel=offer.channel,
            variant=choice.variant,
            reason=choice.reason,
        )
        for offer, _ in live
        if offer.name == choice.offer
    ]
    return Decision.model_construct(
        personal=personal,
        reason=reason,
        traits=traits,
        segments=segments,
        offers=chosen,
        variant=choice.variant,
        recommendations=found,
        best_channel=best_channel,
        best_hour=best_hour,
        best_time=best_time,
        decided_at=iso_utc(now) or "",
    )


def preview(
    context: Context,
    personalizer: Personalizer,
    reference: str,
    *,
    channel: str = "web",
    strategy: Strategy | None = None,
    n: int | None = None,
) -> Decision:
    """The decision for the person `reference` names (`TYPE:VALUE` or a profile id), as the
    decision API would answer it, without counting a show or recording it: the console's
    and the CLI's live decision."""
    profile_id = lookup.lookup(
        context.store, reference, context.settings.default_region, context.pipeline.find_in_memory
    )
    if not personalizer.loaded:
        personalizer.load()
    request = DecisionRequest(channel=channel, strategy=strategy, n=n)
    return personalizer.decide_for(profile_id, request, reference, record=False)


def caller_card(context: Context, personalizer: Personalizer, text: str) -> CallerCard:
    """The call-centre card (`callcentre.caller`) with the live decision for the phone
    channel: the offer or next best action to propose, not recorded."""

    def decide(profile_id: str) -> Decision:
        if not personalizer.loaded:
            personalizer.load()
        request = DecisionRequest(channel="phone")
        return personalizer.decide_for(profile_id, request, profile_id, record=False)

    return callcentre.caller(context, text, decide)
