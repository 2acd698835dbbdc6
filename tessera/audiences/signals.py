"""Signal traits: what a visitor's page views and events say about them, as traits with a
lifetime (Audience Manager's "rule-based traits").

    - name: travel_reader          # the trait, used in segments as computed.travel_reader
      when:                        # every condition must hold for one event
        page_category: Travel      # the page's content category or one under it
        referrer_domain: google.com
      value: true                  # what the trait holds (true by default)
      lifetime_days: 30            # it lasts while a matching event is this recent

Conditions: `path_prefix`, `url_contains`, `referrer_domain` (the domain or a subdomain of it),
`utm_source`, `utm_medium`, `utm_campaign`, `page_category` (a taxonomy node's id or path,
through the page-path → category map, `set_categories`), `device_type` (`mobile`, `tablet`
or `desktop`, from the user agent), `country` (the profile's country trait). Signal traits
are refreshed with the computed traits and stored beside them, per live profile, so an
anonymous visitor's signals join the customer profile the day the cookie is linked.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import orjson

from tessera.errors import InvalidField, NotFound
from tessera.store import Store

CONDITIONS = ("path_prefix", "url_contains", "referrer_domain", "utm_source", "utm_medium",
              "utm_campaign", "page_category", "device_type", "country")  # fmt: skip
DEVICE_TYPES = ("mobile", "tablet", "desktop")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# The event's page facts, from the properties a page call carries or from context.page (the
# pixel and analytics.js track calls carry it there), and its campaign and user agent.
_EVENTS_SQL = """
SELECT coalesce(m.merged_into, ep.profile_id) AS profile_id, e.timestamp,
  coalesce(e.properties->>'path', e.payload->'context'->'page'->>'path') AS path,
  coalesce(e.properties->>'url', e.payload->'context'->'page'->>'url') AS url,
  lower(regexp_extract(coalesce(e.properties->>'referrer',
    e.payload->'context'->'page'->>'referrer'), '^[A-Za-z]+://([^/:?#]+)', 1)) AS referrer_domain,
  e.payload->'context'->'campaign'->>'source' AS utm_source,
  e.payload->'context'->'campaign'->>'medium' AS utm_medium,
  e.payload->'context'->'campaign'->>'name' AS utm_campaign,
  CASE WHEN regexp_matches(coalesce(e.payload->'context'->>'userAgent', ''), '(?i)ipad|tablet')
         THEN 'tablet'
       WHEN regexp_matches(coalesce(e.payload->'context'->>'userAgent', ''),
                           '(?i)mobi|iphone|android')
         THEN 'mobile'
       WHEN e.payload->'context'->>'userAgent' IS NOT NULL THEN 'desktop' END AS device_type
FROM events e JOIN event_profiles ep ON ep.seq = e.seq
LEFT JOIN (SELECT profile_id, merged_into FROM profiles WHERE merged_into IS NOT NULL) m
  ON m.profile_id = ep.profile_id
WHERE e.type IN ('page', 'screen', 'track') AND e.timestamp >= $oldest
"""


def parse(raw: Any) -> dict[str, Any]:
    """Check one definition; errors name the field and what is expected."""
    if not isinstance(raw, dict):
        raise InvalidField("a signal trait is a mapping with name, when and lifetime_days")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidField(
            f"signal trait name {name!r} must be lower-case letters, digits and '_'",
            field="name",
            value=name,
        )
    when = raw.get("when")
    if not isinstance(when, dict) or not when:
        raise InvalidField(
            f"signal trait {name!r} needs `when:` with at least one of {', '.join(CONDITIONS)}",
            field="when",
        )
    unknown = sorted(set(when) - set(CONDITIONS))
    if unknown:
        raise InvalidField(
            f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(CONDITIONS)}",
            field="when",
            value=unknown,
        )
    if "device_type" in when and when["device_type"] not in DEVICE_TYPES:
        raise InvalidField(
            f"device_type {when['device_type']!r} must be one of {', '.join(DEVICE_TYPES)}",
            field="when.device_type",
            value=when["device_type"],
        )
    lifetime = raw.get("lifetime_days", 30)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime < 1:
        raise InvalidField(
            f"lifetime_days {lifetime!r} must be a whole number of days, at least 1",
            field="lifetime_days",
            value=lifetime,
        )
    return {"name": name, "when": {k: str(v) for k, v in when.items()},
            "value": raw.get("value", True), "lifetime_days": lifetime}  # fmt: skip


def save(store: Store, raw: Any, now: datetime) -> dict[str, Any]:
    definition = parse(raw)
    clash = store.fetch_one(
        "SELECT 1 FROM computed_trait_definitions WHERE name = ?", [definition["name"]]
    )
    if clash:
        raise InvalidField(
            f"{definition['name']!r} is a computed trait already; pick another name",
            field="name",
            value=definition["name"],
        )
    store.execute(
        "INSERT OR REPLACE INTO signal_traits VALUES (?, ?, ?)",
        [definition["name"], orjson.dumps(definition).decode(), now],
    )
    return definition


def load_config(store: Store, document: Any, now: datetime) -> dict[str, Any]:
    """Replace the signal traits and the page categories with a document:

        taxonomy: iab-content            # where categories come from (default iab-content)
        categories: {/travel: "653", /running: "...."}
        signals: [{name: ..., when: {...}, lifetime_days: 30}, ...]
    """
    if not isinstance(document, dict):
        raise InvalidField("a signals document is a mapping with `signals:` and `categories:`")
    items = document.get("signals") or []
    if not isinstance(items, list):
        raise InvalidField(
            f"signals must be a list of signal traits (name, when, lifetime_days), got {items!r}",
            field="signals",
            value=items,
        )
    found = [parse(item) for item in items]
    names = [d["name"] for d in found]
    if len(set(names)) != len(names):
        raise InvalidField("two signal traits have the same name", field="signals")
    mapping = document.get("categories") or {}
    if not isinstance(mapping, dict):
        raise InvalidField("categories must map page path prefixes to category ids")
    set_categories(store, {str(k): str(v) for k, v in mapping.items()},
                   str(document.get("taxonomy", "iab-content")))  # fmt: skip
    old = [r[0] for r in store.fetch_all("SELECT name FROM signal_traits")]
    with store.transaction():
        store.execute("DELETE FROM signal_traits")
        store.execute("DELETE FROM computed_traits WHERE name IN (SELECT unnest(?))", [old])
    for definition in found:
        save(store, definition, now)
    return {"signals": len(found), "categories": len(mapping)}


def definitions(store: Store) -> list[dict[str, Any]]:
    return [
        orjson.loads(row[0])
        for row in store.fetch_all("SELECT definition FROM signal_traits ORDER BY name")
    ]


def delete(store: Store, name: str) -> None:
    if not store.fetch_one("SELECT 1 FROM signal_traits WHERE name = ?", [name]):
        raise NotFound(f"no signal trait named {name!r}")
    store.execute("DELETE FROM signal_traits WHERE name = ?", [name])
    store.execute("DELETE FROM computed_traits WHERE name = ?", [name])


def set_categories(store: Store, mapping: dict[str, str], taxonomy: str) -> int:
    """Which page paths belong to which category: path prefix → taxonomy node id."""
    known = {r[0] for r in store.fetch_all(
        "SELECT id FROM taxonomy_nodes WHERE taxonomy = ?", [taxonomy])}  # fmt: skip
    for prefix, node in mapping.items():
        if not str(prefix).startswith("/"):
            raise InvalidField(f"path prefix {prefix!r} must start with '/'", field="prefix")
        if str(node) not in known:
            raise InvalidField(
                f"category {node!r} for {prefix!r} is not in taxonomy {taxonomy!r} "
                "(load it with `tessera audiences taxonomy load FILE`)",
                field="category",
                value=node,
            )
    with store.transaction():
        store.execute("DELETE FROM page_categories")
        for prefix, node in mapping.items():
            store.execute(
                "INSERT INTO page_categories VALUES (?, ?, ?)", [str(prefix), taxonomy, str(node)]
            )
    return len(mapping)


def categories(store: Store) -> list[dict[str, Any]]:
    return store.fetch_dicts(
        "SELECT c.prefix, c.taxonomy, c.category_id, n.path FROM page_categories c "
        "LEFT JOIN taxonomy_nodes n ON n.taxonomy = c.taxonomy AND n.id = c.category_id "
        "ORDER BY c.prefix"
    )


def compile_signals(found: list[dict[str, Any]], now: datetime) -> tuple[str, dict[str, Any]]:
    """One query giving (profile_id, name, value JSON) for every signal that holds now."""
    parameters: dict[str, Any] = {}

    def bind(value: Any) -> str:
        key = f"s{len(parameters)}"
        parameters[key] = value
        return f"${key}"

    parts = []
    for definition in found:
        tests = [f"timestamp >= {bind(now - timedelta(days=definition['lifetime_days']))}"]
        for condition, wanted in definition["when"].items():
            tests.append(_condition(condition, bind(wanted)))
        value = bind(orjson.dumps(definition["value"]).decode())
        parts.append(
            f"SELECT DISTINCT profile_id, {bind(definition['name'])} AS name, {value} AS value "
            f"FROM ev WHERE {' AND '.join(tests)}"
        )
    oldest = max((d["lifetime_days"] for d in found), default=1)
    parameters["oldest"] = now - timedelta(days=oldest)
    sql = f"WITH ev AS ({_EVENTS_SQL}) " + " UNION ALL ".join(parts)
    return sql, parameters


def _condition(condition: str, value: str) -> str:
    if condition == "path_prefix":
        return f"starts_with(path, {value})"
    if condition == "url_contains":
        return f"contains(url, {value})"
    if condition == "referrer_domain":
        domain = f"lower({value})"
        return f"(referrer_domain = {domain} OR ends_with(referrer_domain, '.' || {domain}))"
    if condition in ("utm_source", "utm_medium", "utm_campaign", "device_type"):
        return f"{condition} = {value}"
    if condition == "country":
        return (
            "profile_id IN (SELECT profile_id FROM profile_summaries "
            f"WHERE upper(traits->>'country') = upper({value}))"
        )
    # page_category: a category mapped to a prefix of the path, or a node under it.
    return (
        "EXISTS (SELECT 1 FROM page_categories pc JOIN taxonomy_closure c "
        "ON c.taxonomy = pc.taxonomy AND c.descendant = pc.category_id "
        "JOIN taxonomy_nodes n ON n.taxonomy = c.taxonomy AND n.id = c.ancestor "
        f"WHERE starts_with(ev.path, pc.prefix) AND (n.id = {value} "
        f"OR lower(n.path) = lower({value})))"
    )


def evaluate(store: Store, now: datetime) -> list[tuple[Any, ...]]:
    """(profile_id, name, value JSON) for every signal trait that holds now; written with
    the computed traits, in their refresh's transaction (`catalogue.refresh`)."""
    found = definitions(store)
    if not found:
        return []
    sql, parameters = compile_signals(found, now)
    return store.fetch_all(sql, parameters)
