"""Does a person's consent allow a purpose? One rule for audience exports and destinations.

Consent comes from `context.consent.categoryPreferences` (Segment's consent object),
merged into the profile like a trait (`profiles/summary.py`). A purpose is answered by the
categories that stand for it, whatever a consent manager calls them (Segment's
"Advertising", a CMP's "targeting"). Policy 'required': the record must grant the purpose;
'unless_refused': only an explicit no refuses (no record, no refusal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Purpose = Literal["analytics", "personalisation", "email", "advertising"]
Policy = Literal["required", "unless_refused"]
PURPOSES: tuple[Purpose, ...] = ("analytics", "personalisation", "email", "advertising")

#: Consent categories (lower-cased) that stand for each purpose.
CATEGORIES: dict[str, frozenset[str]] = {
    "advertising": frozenset({"advertising", "targeting"}),
    "analytics": frozenset({"analytics", "performance", "measurement", "statistics"}),
    "personalisation": frozenset({"personalisation", "personalization", "functional"}),
    "email": frozenset({"email", "marketing", "email_marketing", "emailmarketing"}),
}
_YES = {True, "true", "yes", "granted", "1"}


def allows(consent: Mapping[str, Any], purpose: str, policy: str) -> bool:
    """Does this consent record allow `purpose` under `policy` (see the module)?"""
    if not consent:
        return policy == "unless_refused"
    categories = CATEGORIES.get(purpose, frozenset({purpose}))
    answers = [value for key, value in consent.items() if key.lower() in categories]
    if not answers:
        return policy == "unless_refused"
    return all((value.lower() if isinstance(value, str) else value) in _YES for value in answers)


def policy_for(purpose: str, advertising_policy: str) -> str:
    """Advertising follows TESSERA_ADVERTISING_CONSENT (as exports always have); the other
    purposes are allowed unless the person refused them."""
    return advertising_policy if purpose == "advertising" else "unless_refused"
