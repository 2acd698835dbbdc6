"""Roles and what each may do: one table, read by the one authorisation dependency
(`tessera/dependencies.py`) for every admin API route and console page.

A route belongs to an *area* (its family: segments, destinations, profiles...), found from
its path by `area_of`. A role grants an area `read` (GET), `write` (everything) or nothing.
A personal API token may narrow its user's role further with scopes (`AREA:read`,
`AREA:write`, or `*`), never widen it.
"""

from __future__ import annotations

import re
from typing import Literal

Role = Literal["admin", "marketer", "analyst", "agent"]
ROLES: tuple[Role, ...] = ("admin", "marketer", "analyst", "agent")
Access = Literal["none", "read", "write"]

#: The areas, and what each covers.
AREAS: dict[str, str] = {
    "data": "sources, imports, the event log, the pipeline, stats",
    "people": "lists and searches of profiles",
    "profile": "one profile looked up by an identifier: the 360° view, its events",
    "identity": "explaining and undoing merges",
    "traits": "computed trait definitions and the predictive models",
    "catalog": "the product catalogue and the loyalty rules",
    "personalisation": "recommendations, offers and the decisions made",
    "segments": "segments, their members and history",
    "audiences": "taxonomies, third-party feeds, lookalikes, campaigns",
    "exports": "audience files for ad platforms",
    "destinations": "destinations and their deliveries",
    "consent": "changing a person's consent",
    "requests": "access and erasure requests (data-subject requests)",
    "access": "users, API tokens and the audit log",
    "operations": "backups of the whole data directory (admins only)",
}

#: Role -> area -> access. `admin` has write everywhere.
GRANTS: dict[str, dict[str, Access]] = {
    "admin": dict.fromkeys(AREAS, "write"),
    "marketer": {
        "data": "read", "people": "read", "profile": "read", "identity": "read",
        "traits": "read", "segments": "write", "audiences": "write", "exports": "write",
        "destinations": "write", "consent": "read", "catalog": "write",
        "personalisation": "write",
    },
    "analyst": {
        "data": "read", "people": "read", "profile": "read", "identity": "read",
        "traits": "read", "segments": "read", "audiences": "read", "destinations": "read",
        "consent": "read", "catalog": "read", "personalisation": "read",
    },
    "agent": {"profile": "read", "consent": "write", "requests": "write"},
}  # fmt: skip

#: Roles that see personal identifiers (e-mail, phone...) in clear; the others see them
#: masked (`privacy/masking.py`).
SEES_IDENTIFIERS: frozenset[str] = frozenset({"admin", "agent"})

#: (path pattern, area), first match wins; paths are the routes' templates, so a route
#: added under a known prefix is covered at once, and one under none is `admin`-only
#: (`UNCLASSIFIED`) until it is named here.
_ROUTES: list[tuple[str, str]] = [
    (r"^/api/profiles/\{reference:path\}/consent", "consent"),
    (r"^/profiles/\{reference:path\}/consent", "consent"),
    (r"^/api/profiles/\{reference:path\}", "profile"),
    (r"^/profiles/\{reference:path\}/unmerge", "identity"),
    (r"^/profiles/\{reference:path\}", "profile"),
    (r"^/lookup", "profile"),
    (r"^/(api/)?callcentre", "profile"),
    (r"^/(api/)?profiles$", "people"),
    (r"^/(api/)?identity", "identity"),
    (r"^/api/(computed-)?traits", "traits"),
    (r"^/(api/)?predict", "traits"),
    (r"^/(api/)?(catalog|catalogue|loyalty)", "catalog"),
    # Publishable keys are credentials: `access` (admins) like users and tokens.
    (r"^/api/personalize/keys", "access"),
    (r"^/(api/)?(offers|recommendations|decisions|personalize)", "personalisation"),
    (r"^/api/audiences/\{segment\}/export", "exports"),
    (r"^/(api/)?audiences", "audiences"),
    (r"^/(api/)?segments", "segments"),
    (r"^/(api/)?destinations", "destinations"),
    (r"^/(api/)?(users|tokens|audit)", "access"),
    (r"^/(api/)?privacy", "requests"),
    (r"^/api/(stats|sources|events|imports|pipeline)", "data"),
    (r"^/(sources|imports|pipeline)", "data"),
    (r"^/(api/)?plans", "data"),
    (r"^/$", "data"),
    # A backup is every byte Tessera holds: admins only, named so (not by falling through).
    (r"^/api/backup", "operations"),
]
_COMPILED = [(re.compile(pattern), area) for pattern, area in _ROUTES]
UNCLASSIFIED = "access"
#: POST routes that only read (a check of a definition, a preview).
_READS = re.compile(r"/(check|preview)$")


def area_of(path_template: str) -> str:
    """The area of a route, from its path template (`/api/segments/{name}`)."""
    return named_area(path_template) or UNCLASSIFIED


def named_area(path_template: str) -> str | None:
    """The area the table names for a route, or None when no pattern names it (the route
    then falls to `UNCLASSIFIED`, admin-only: safe but silent, so a test lists them)."""
    for pattern, area in _COMPILED:
        if pattern.search(path_template):
            return area
    return None


def needs(method: str, path_template: str) -> Access:
    """What a request needs of its area: read for GET/HEAD (and checks), write otherwise."""
    if method in ("GET", "HEAD") or _READS.search(path_template):
        return "read"
    return "write"


def grants(role: str, area: str, scopes: frozenset[str] | None = None) -> Access:
    """What `role` (narrowed by a token's `scopes`, when given) may do in `area`."""
    access = GRANTS.get(role, {}).get(area, "none")
    if scopes is None or "*" in scopes:
        return access
    if f"{area}:write" in scopes:
        return access
    if f"{area}:read" in scopes:
        return "read" if access != "none" else "none"
    return "none"


def allowed(
    role: str, method: str, path_template: str, scopes: frozenset[str] | None = None
) -> bool:
    """May `role` (with `scopes`) make this request?"""
    have = grants(role, area_of(path_template), scopes)
    want = needs(method, path_template)
    return have == "write" or (have == "read" and want == "read")


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes as given, or ValueError naming the first that is not AREA:read|write or *."""
    for scope in scopes:
        area, _, level = scope.partition(":")
        if scope != "*" and (area not in AREAS or level not in ("read", "write")):
            raise ValueError(
                f"scope {scope!r} is not one of AREA:read, AREA:write or *; areas: "
                + ", ".join(AREAS)
            )
    return scopes
