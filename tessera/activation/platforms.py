"""Audience syncs to ad platforms: one connector per platform's API shape.

They receive the same messages as any destination (`Audience Entered` / `Audience
Exited` tracks, with the identifiers asked for in `context.externalIds`; the identifies
are skipped) and turn them into the platform's own requests. `url` is the API's base
(https://googleads.googleapis.com, https://graph.facebook.com), a local fake in tests: no
real platform is ever called by Tessera's tests.

- Google Customer Match (Google Ads API, OfflineUserDataJobService, REST): one job per
  batch, `POST /v17/customers/{account}/offlineUserDataJobs:create` with the user list,
  then `POST /v17/{job}:addOperations` with `create` / `remove` operations of
  `userIdentifiers` (`hashedEmail`, `hashedPhoneNumber`, `mobileId`), then `:run`.
- Meta Custom Audiences (Marketing API): `POST /v19.0/{audience_id}/users` to add and
  `DELETE` to remove, each with `payload = {"schema": [...], "data": [[...], ...]}` of
  SHA-256 hashes (EMAIL_SHA256, PHONE_SHA256) or MADID.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from tessera.activation.connectors import Outcome, post
from tessera.activation.messages import sha256_text
from tessera.activation.options import DestinationOptions

Message = dict[str, Any]
GOOGLE_VERSION = "v17"
META_VERSION = "v19.0"


def changes(batch: Sequence[Message]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The identifiers of the people who entered and who left, from the tracks of a batch."""
    added: list[dict[str, str]] = []
    removed: list[dict[str, str]] = []
    for message in batch:
        if message.get("type") != "track":
            continue
        ids = {item["type"]: str(item["id"]) for item in
               message.get("context", {}).get("externalIds", [])}  # fmt: skip
        if ids:
            (added if message.get("event") == "Audience Entered" else removed).append(ids)
    return added, removed


def _hashed(ids: dict[str, str], kind: str) -> str | None:
    if f"{kind}_sha256" in ids:
        return ids[f"{kind}_sha256"]
    return sha256_text(ids[kind]) if kind in ids else None


class _Platform:
    def __init__(
        self, options: DestinationOptions, transport: httpx.BaseTransport | None = None
    ) -> None:
        headers = dict(options.headers)
        if options.access_token:
            headers["Authorization"] = f"Bearer {options.access_token}"
        self.options = options
        self.base = (options.url or "").rstrip("/")
        self.client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(options.timeout_seconds), transport=transport
        )

    def idle(self) -> None:
        return None

    def close(self) -> None:
        self.client.close()


class GoogleCustomerMatch(_Platform):
    """Google Ads Customer Match through an offline user data job (see the module)."""

    def send(self, batch: Sequence[Message]) -> Outcome:
        added, removed = changes(batch)
        if not added and not removed:
            return Outcome(200)
        started = time.monotonic()
        account = self.options.account
        user_list = f"customers/{account}/userLists/{self.options.audience_id}"
        created = post(self.client, f"{self.base}/{GOOGLE_VERSION}/customers/{account}/"
                       "offlineUserDataJobs:create", orjson.dumps({"job": {
                           "type": "CUSTOMER_MATCH_USER_LIST",
                           "customerMatchUserListMetadata": {"userList": user_list}}}),
                       {"Content-Type": "application/json"})  # fmt: skip
        if created.status != 200:
            return created
        job = str(orjson.loads(created.detail or "{}").get("resourceName", ""))
        operations = [{"create": {"userIdentifiers": self._identifiers(ids)}} for ids in added]
        operations += [{"remove": {"userIdentifiers": self._identifiers(ids)}} for ids in removed]
        body = {"operations": operations, "enablePartialFailure": True}
        for step, payload in ((":addOperations", body), (":run", {})):
            outcome = post(self.client, f"{self.base}/{GOOGLE_VERSION}/{job}{step}",
                           orjson.dumps(payload), {"Content-Type": "application/json"})  # fmt: skip
            if outcome.status != 200:
                return outcome
        return Outcome(200, "", None, time.monotonic() - started)

    @staticmethod
    def _identifiers(ids: dict[str, str]) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        if email := _hashed(ids, "email"):
            found.append({"hashedEmail": email})
        if phone := _hashed(ids, "phone"):
            found.append({"hashedPhoneNumber": phone})
        if "advertising_id" in ids:
            found.append({"mobileId": ids["advertising_id"]})
        return found


class MetaCustomAudiences(_Platform):
    """Meta Custom Audiences' users edge (see the module)."""

    SCHEMA = ("EMAIL_SHA256", "PHONE_SHA256", "MADID")

    def send(self, batch: Sequence[Message]) -> Outcome:
        added, removed = changes(batch)
        started = time.monotonic()
        url = f"{self.base}/{META_VERSION}/{self.options.audience_id}/users"
        for method, people in (("POST", added), ("DELETE", removed)):
            if not people:
                continue
            data = [[_hashed(ids, "email") or "", _hashed(ids, "phone") or "",
                     ids.get("advertising_id", "")] for ids in people]  # fmt: skip
            body = orjson.dumps({"payload": {"schema": list(self.SCHEMA), "data": data}})
            outcome = post(self.client, url, body, {"Content-Type": "application/json"}, method)
            if outcome.status != 200:
                return outcome
        return Outcome(200, "", None, time.monotonic() - started)
