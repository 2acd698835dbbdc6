"""The call-centre screen: who is calling, from a phone number or an e-mail as the caller
gives it, with what an agent needs at once (Salesforce's or Genesys's screen pop).

The text is read in any format: an e-mail with spaces or capitals, a phone number national
(`06 12 34 56 78`), spaced or international (`+33 6 12 ...`, `0033 6 ...`). A national
number is tried in TESSERA_DEFAULT_REGION first, then in each region the store's phone
numbers come from, until one is someone's. `TYPE:VALUE` and profile ids work too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tessera.catalog.keys import ProductKeys
from tessera.context import Context
from tessera.errors import InvalidField, NotFound
from tessera.identity import lookup
from tessera.identity.identifiers import Identifier, normalise
from tessera.personalize.decisions import Decision
from tessera.personalize.interactions import PURCHASE_EVENTS
from tessera.profiles.consent import PURPOSES, allows, policy_for
from tessera.profiles.view import display_name, profile_view
from tessera.results import Result

#: Source channels whose events are contacts with customer service.
SERVICE_CHANNELS = ("phone", "chat")
CLOSED = frozenset({"closed", "resolved", "done", "solved", "cancelled"})
#: Regions tried for a national phone number after the default one.
REGIONS = ("FR", "DE", "ES", "GB", "IT", "NL", "BE", "PT", "IE", "US", "CA", "AU")
_HISTORY = 300


class Order(Result):
    at: str | None
    source: str
    order_id: str | None
    revenue: float | None
    products: list[str]


class Contact(Result):
    at: str | None
    channel: str
    source: str
    what: str


class Issue(Result):
    at: str | None
    source: str
    subject: str
    status: str


class CallerCard(Result):
    """Who is calling and what to say: identity, orders, contacts, issues, consent, offer."""

    query: str
    identifier: str
    profile_id: str
    name: str | None
    email: str | None
    phone: str | None
    city: str | None
    country: str | None
    first_seen: str | None
    last_seen: str | None
    orders: list[Order]
    contacts: list[Contact]
    issues: list[Issue]
    consent: dict[str, bool]
    computed: dict[str, Any]
    decision: Decision | None


def identify_caller(context: Context, text: str) -> tuple[Identifier | None, str]:
    """The profile a caller's phone number or e-mail (any format) belongs to."""
    query = text.strip()
    if not query or len(query) > 320:
        raise InvalidField(
            "type the caller's phone number or e-mail address", field="q", value=text
        )
    if query.startswith("prf_") or (":" in query and "@" not in query.split(":")[0]):
        return None, lookup.lookup(
            context.store, query, context.settings.default_region, context.pipeline.find_in_memory
        )
    candidates: list[Identifier] = []
    if "@" in query:
        value = normalise("email", query)
        if value:
            candidates.append(Identifier("email", value))
    else:
        regions = [context.settings.default_region, *REGIONS]
        for region in dict.fromkeys(r for r in regions if r):
            value = normalise("phone", query, region=region)
            if value and Identifier("phone", value) not in candidates:
                candidates.append(Identifier("phone", value))
            if query.lstrip().startswith("+"):
                break
    if not candidates:
        raise InvalidField(
            f"{query!r} is neither an e-mail address nor a phone number; type it as the "
            "caller gives it (e.g. 06 12 34 56 78, +49 151 2345678, jane@example.com)",
            field="q",
            value=text,
        )
    for identifier in candidates:
        try:
            found = context.pipeline.find_in_memory(identifier)
            if found is None:
                found = lookup.find_profile(context.store, identifier)
            return identifier, found
        except NotFound:
            continue
    raise NotFound(
        f"nobody has {' or '.join(str(c) for c in candidates)}; check the number or ask for "
        "the e-mail address",
        field="q",
        value=text,
    )


def caller(
    context: Context, text: str, decide: Callable[[str], Decision] | None = None
) -> CallerCard:
    """The card for the caller `text` names; `decide` gives the offer or next best action
    for a profile id (the decision API's, `serving.Personalizer.decide_for`)."""
    identifier, profile_id = identify_caller(context, text)
    core = context.pipeline.read_profile(profile_id)
    view = profile_view(context.store, profile_id, limit=_HISTORY, core=core)
    traits = view.get("traits") or {}
    events = view.get("events", {}).get("items", [])
    consent = view.get("consent") or {}
    advertising = context.settings.advertising_consent
    return CallerCard(
        query=text,
        identifier=str(identifier) if identifier else profile_id,
        profile_id=profile_id,
        name=display_name(traits),
        email=_first(view, "email") or traits.get("email"),
        phone=_first(view, "phone") or traits.get("phone"),
        city=_str(traits.get("city")),
        country=_str(traits.get("country")),
        first_seen=view.get("first_seen"),
        last_seen=view.get("last_seen"),
        orders=_orders(events, ProductKeys.of_settings(context.settings)),
        contacts=_contacts(events),
        issues=_issues(events),
        consent={p: allows(consent, p, policy_for(p, advertising)) for p in PURPOSES},
        computed=view.get("computed_traits") or {},
        decision=decide(profile_id) if decide else None,
    )


def _first(view: dict[str, Any], kind: str) -> str | None:
    for item in view.get("identifiers", []):
        if item["type"] == kind:
            return str(item["value"])
    return None


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _orders(events: list[dict[str, Any]], keys: ProductKeys, limit: int = 5) -> list[Order]:
    orders = []
    for event in events:
        if event["type"] != "track" or event["event"] not in PURCHASE_EVENTS:
            continue
        properties = event.get("properties") or {}
        items = properties.get("products")
        # Its items, or the order's own product (Product Purchased; a till's receipt line
        # names it as `product`), by name, else by the id read where
        # TESSERA_PRODUCT_ID_PROPERTIES says.
        if isinstance(items, list):
            listed = [item for item in items if isinstance(item, dict)]
        else:
            listed = [properties] if keys.of(properties) or _label(properties) else []
        names = [_label(item) or keys.of(item) or "?" for item in listed]
        revenue = properties.get("revenue", properties.get("total"))
        orders.append(
            Order(
                at=event["timestamp"],
                source=event["source"],
                order_id=_str(properties.get("order_id")),
                revenue=float(revenue) if isinstance(revenue, int | float) else None,
                products=names,
            )
        )
        if len(orders) == limit:
            break
    return orders


def _label(item: dict[str, Any]) -> str | None:
    """An item's name as written: `name` (Segment's spec) or `product` (a till's line)."""
    for key in ("name", "product"):
        if isinstance(item.get(key), str) and item[key].strip():
            return str(item[key])
    return None


def _contacts(events: list[dict[str, Any]], per_channel: int = 3) -> list[Contact]:
    shown: dict[str, int] = {}
    contacts = []
    for event in events:
        channel = event["channel"]
        if shown.get(channel, 0) >= per_channel:
            continue
        shown[channel] = shown.get(channel, 0) + 1
        what = event["event"] or event["name"] or event["type"]
        contacts.append(
            Contact(at=event["timestamp"], channel=channel, source=event["source"], what=what)
        )
    return sorted(contacts, key=lambda c: (c.channel, c.at or ""), reverse=False)


def _issues(events: list[dict[str, Any]]) -> list[Issue]:
    issues = []
    for event in events:
        if event["channel"] not in SERVICE_CHANNELS:
            continue
        properties = event.get("properties") or {}
        status = str(properties.get("status") or "open").lower()
        if status in CLOSED:
            continue
        subject = (
            properties.get("subject") or properties.get("reason") or event["event"] or "contact"
        )
        issues.append(
            Issue(
                at=event["timestamp"], source=event["source"], subject=str(subject), status=status
            )
        )
    return issues[:10]
