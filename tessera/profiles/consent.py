"""Does a person's consent allow a purpose? The one rule, used wherever data leaves or is
acted upon: audience exports, destinations, lookalike seeds and scores, third-party
enrichment (docs/privacy.md lists them).

A profile's consent is merged like a trait (`profiles/summary.py`, latest wins per key)
from three sources, all of them events in the log so a rebuild keeps them and an erasure
removes them: `context.consent.categoryPreferences` (Segment's consent object), a TCF v2
string (`profiles/tcf.py` maps its purposes to ours), and an agent's explicit change
(`privacy/consent_changes.py` writes it as an event carrying who and why).

A purpose is answered by the categories that stand for it, whatever a consent manager
calls them (Segment's "Advertising", a CMP's "targeting"). Policy 'required': the record
must grant the purpose; 'unless_refused': only an explicit no refuses (no record, no
refusal). Each purpose has its policy (`Settings.consent_policy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from sqlglot import exp

Purpose = Literal["analytics", "personalisation", "email", "advertising"]
Policy = Literal["required", "unless_refused"]
PURPOSES: tuple[Purpose, ...] = ("analytics", "personalisation", "email", "advertising")
POLICIES: tuple[Policy, ...] = ("required", "unless_refused")

#: Consent categories (lower-cased) that stand for each purpose; a purpose not listed is
#: answered by a category of its own name.
CATEGORIES: dict[str, frozenset[str]] = {
    "advertising": frozenset({"advertising", "targeting"}),
    "analytics": frozenset({"analytics", "performance", "measurement", "statistics"}),
    "personalisation": frozenset({"personalisation", "personalization", "functional"}),
    "email": frozenset({"email", "marketing", "email_marketing", "emailmarketing"}),
}
#: The answers that grant, as the text of a JSON value lower-cased (true -> 'true', 1 -> '1',
#: "Granted" -> 'granted'): how `allows` and `allows_sql` both read a record.
_YES_TEXT = ("true", "yes", "granted", "1")
#: The purpose third-party enrichment serves: `audiences/feeds.of_profile` joins third-party
#: segments, and the segment condition `has third_party` counts members, only where the
#: person's consent allows it.
ENRICHMENT_PURPOSE: Purpose = "advertising"


def allows(
    profile_consent: Mapping[str, Any] | None,
    purpose: str,
    policy: str | Mapping[str, str] = "unless_refused",
) -> bool:
    """Does this person's consent allow `purpose`?

    Args:
        profile_consent: the profile's merged consent (category -> yes/no).
        purpose: one of the configured purposes.
        policy: the policy of this purpose, or every purpose's (`Settings.consent_policies`).
    """
    if not isinstance(policy, str):
        policy = policy.get(purpose, "unless_refused")
    if not profile_consent:
        return policy == "unless_refused"
    categories = CATEGORIES.get(purpose, frozenset({purpose}))
    answers = [value for key, value in profile_consent.items() if key.lower() in categories]
    if not answers:
        return policy == "unless_refused"
    return all(_granted(value) for value in answers)


def _granted(value: Any) -> bool:
    """A recorded answer read as SQL reads its JSON text (`allows_sql`)."""
    if value is None:
        return False
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text.lower() in _YES_TEXT


def answers(
    profile_consent: Mapping[str, Any] | None, purposes: list[str]
) -> dict[str, bool | None]:
    """Each purpose as the record answers it: True, False, or None when it is silent (the
    policy decides); what the 360° view and the consent page show."""
    result: dict[str, bool | None] = {}
    for purpose in purposes:
        categories = CATEGORIES.get(purpose, frozenset({purpose}))
        found = [v for k, v in (profile_consent or {}).items() if k.lower() in categories]
        result[purpose] = None if not found else all(_granted(v) for v in found)
    return result


def policy_for(purpose: str, policies: str | Mapping[str, str]) -> str:
    """The policy of `purpose`: from every purpose's policies, or (the older form) the
    advertising policy, the other purposes being allowed unless refused."""
    if isinstance(policies, str):
        return policies if purpose == "advertising" else "unless_refused"
    return policies.get(purpose, "unless_refused")


def allows_sql(
    consent: exp.Expr, purpose: str, policy: exp.Expr, dialect: str = "duckdb"
) -> exp.Expr:
    """`allows()` as a SQL predicate over a JSON consent column (`profile_summaries.consent`),
    compiled from the same `CATEGORIES` and answers, so the two cannot drift apart
    (`tests/integration/test_segment_agreement.py` compares them on random records).

    Args:
        consent: the column holding the merged consent as a JSON object.
        purpose: one of the configured purposes.
        policy: an expression (a bound parameter) worth 'required' or 'unless_refused'.
        dialect: `duckdb`, or `spark` (map_filter and forall instead of DuckDB's lists).

    The record's entries whose key (lower-cased) stands for the purpose are the answers;
    none: the policy decides; else every answer must be a yes. A JSON value is read as
    text (`true`, `1`, `"Granted"`), lower-cased, as `allows` reads it.
    """
    categories = sorted(CATEGORIES.get(purpose, frozenset({purpose})))
    silent = exp.EQ(this=policy, expression=exp.Literal.string("unless_refused"))

    def among(value: exp.Expr, texts: list[str] | tuple[str, ...]) -> exp.Expr:
        return exp.In(
            this=exp.Lower(this=value), expressions=[exp.Literal.string(t) for t in texts]
        )

    def yes(value: exp.Expr) -> exp.Expr:
        return exp.func("coalesce", among(value, _YES_TEXT), exp.false())

    def call(name: str, *arguments: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this=name, expressions=list(arguments))

    def lam(body: exp.Expr, *names: str) -> exp.Lambda:
        return exp.Lambda(this=body, expressions=[exp.to_identifier(n) for n in names])

    if dialect == "spark":
        as_map = call("from_json", consent, exp.Literal.string("map<string,string>"))
        answers = call("map_filter", as_map, lam(among(exp.column("k"), categories), "k", "v"))
        every = call("forall", call("map_values", answers), lam(yes(exp.column("v")), "v"))
        said = exp.GT(this=call("size", answers.copy()), expression=exp.Literal.number(0))
        verdict: exp.Expr = exp.Case(ifs=[exp.If(this=said, true=every)])
    else:
        as_map = call("json_transform", consent, exp.Literal.string('"MAP(VARCHAR, VARCHAR)"'))
        key = exp.Dot(this=exp.column("e"), expression=exp.to_identifier("key"))
        value = exp.Dot(this=exp.column("e"), expression=exp.to_identifier("value"))
        answers = call("list_filter", call("map_entries", as_map), lam(among(key, categories), "e"))
        # list_bool_and of no answers is NULL: the policy decides.
        verdict = call("list_bool_and", call("list_transform", answers, lam(yes(value), "e")))
    return exp.func("coalesce", verdict, silent)
