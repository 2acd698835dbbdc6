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
_YES = {True, "true", "yes", "granted", "1"}


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
    return all((value.lower() if isinstance(value, str) else value) in _YES for value in answers)


def answers(
    profile_consent: Mapping[str, Any] | None, purposes: list[str]
) -> dict[str, bool | None]:
    """Each purpose as the record answers it: True, False, or None when it is silent (the
    policy decides); what the 360° view and the consent page show."""
    result: dict[str, bool | None] = {}
    for purpose in purposes:
        categories = CATEGORIES.get(purpose, frozenset({purpose}))
        found = [v for k, v in (profile_consent or {}).items() if k.lower() in categories]
        result[purpose] = (
            None
            if not found
            else all((v.lower() if isinstance(v, str) else v) in _YES for v in found)
        )
    return result


def policy_for(purpose: str, policies: str | Mapping[str, str]) -> str:
    """The policy of `purpose`: from every purpose's policies, or (the older form) the
    advertising policy, the other purposes being allowed unless refused."""
    if isinstance(policies, str):
        return policies if purpose == "advertising" else "unless_refused"
    return policies.get(purpose, "unless_refused")
