"""Signing in through an OpenID Connect provider (Keycloak, Google, Entra ID, Okta...).

The authorization code flow with PKCE (RFC 7636, S256), a `state` against forged callbacks
and a `nonce` against replayed id_tokens (OpenID Connect Core 1.0, §3.1):

1. `begin()` makes a fresh state, nonce and code verifier and the provider's authorize URL;
   the console keeps the three in a short-lived signed cookie (`web/session.py`).
2. The provider sends the browser back with `code` and `state`; `complete()` checks the
   state, exchanges the code (with the verifier, and the client secret when there is one)
   at the token endpoint, and verifies the id_token: its signature against the provider's
   JWKS (`RS256`/`ES256`..., never `none` or a shared-secret algorithm), `iss`, `aud`,
   `exp` (and `iat`, `nbf`) and the `nonce`.
3. `admit()` decides who this is: the claim `TESSERA_OIDC_USER_CLAIM` (default `email`)
   names an existing, enabled user, or one is provisioned when `TESSERA_OIDC_AUTO_PROVISION`
   is on; `TESSERA_OIDC_ROLES` maps a role claim to the user's role.

Discovery (`{issuer}/.well-known/openid-configuration`) and the JWKS are fetched with
httpx when first needed and kept; an id_token signed with a key id the cached set lacks
fetches the set again once (a provider rotating its keys). Nothing here logs a claim, a
token or the secret: a refusal's reason is a fixed phrase.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import jwt

from tessera.errors import InvalidField, NotFound, ServerFailure, Unauthorized
from tessera.privacy import users
from tessera.privacy.roles import ROLES
from tessera.settings import Settings
from tessera.store import Store

#: Asymmetric algorithms only: an HS256 token "signed" with the client secret, or `none`,
#: would let anyone holding the secret (or no one) mint a sign-in.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
#: Clock skew tolerated on exp/iat/nbf, as most relying parties allow.
LEEWAY_SECONDS = 60
TIMEOUT_SECONDS = 10.0
#: Roles from the most to the least powerful: the first a person's claim maps to wins.
_POWER = ["admin", "marketer", "agent", "analyst"]


class SignInRefused(Unauthorized):
    """The provider's answer does not sign anyone in (forged, expired, not a user...)."""

    code = "oidc_refused"


class ProviderUnavailable(ServerFailure):
    """The OIDC provider could not be reached or answered something unreadable."""

    code = "oidc_unavailable"
    status = 502


@dataclass(frozen=True)
class Begun:
    """What the browser is sent to, and what must come back with it."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class Admitted:
    """A user the provider vouched for, with the role they now have."""

    user: str
    role: str
    provisioned: bool


def configured(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def check_issuer(issuer: str) -> str:
    """https only, except on this machine (a local provider in tests and development)."""
    parts = urlsplit(issuer)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ProviderUnavailable(
            f"TESSERA_OIDC_ISSUER must be an https URL (http only for localhost), got {issuer!r}"
        )
    return issuer.rstrip("/")


class Client:
    """One provider: its discovery document and keys, fetched once and kept."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        if not configured(settings):
            raise ProviderUnavailable("OIDC is not configured (TESSERA_OIDC_ISSUER, _CLIENT_ID)")
        self.settings = settings
        self.issuer = check_issuer(str(settings.oidc_issuer))
        self.client_id = str(settings.oidc_client_id)
        self._http = httpx.Client(timeout=TIMEOUT_SECONDS, transport=transport)
        self._lock = threading.RLock()  # _key reads the discovery document under it
        self._metadata: dict[str, Any] | None = None
        self._keys: jwt.PyJWKSet | None = None

    def close(self) -> None:
        self._http.close()

    def begin(self, redirect_uri: str) -> Begun:
        """A fresh state, nonce and PKCE verifier, and the URL to send the browser to."""
        metadata = self._discovered()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43-128
        scopes = ["openid", *(s for s in self.settings.oidc_scopes if s != "openid")]
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge(verifier),
            "code_challenge_method": "S256",
        }
        endpoint = str(metadata["authorization_endpoint"])
        joiner = "&" if "?" in endpoint else "?"
        return Begun(f"{endpoint}{joiner}{urlencode(query)}", state, nonce, verifier)

    def complete(
        self, *, code: str, state: str, expected_state: str, nonce: str, verifier: str,
        redirect_uri: str,
    ) -> dict[str, Any]:  # fmt: skip
        """The verified claims of the id_token the code is exchanged for.

        Raises:
            SignInRefused: the state differs, the provider refuses the code, or the
                id_token fails a check (signature, iss, aud, exp, nonce).
            ProviderUnavailable: the provider cannot be reached or answers nonsense.
        """
        if not expected_state or not secrets.compare_digest(state, expected_state):
            raise SignInRefused("the sign-in's state does not match; start again from /sign-in")
        if not code:
            raise SignInRefused("the provider sent no code; start again from /sign-in")
        metadata = self._discovered()
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "client_id": self.client_id,
                "code_verifier": verifier}  # fmt: skip
        auth: httpx.Auth | None = None
        if self.settings.oidc_client_secret is not None:
            # client_secret_basic, the method every provider supports (OIDC Core §9), each
            # part form-encoded first (RFC 6749 §2.3.1).
            secret = self.settings.oidc_client_secret.get_secret_value()
            auth = httpx.BasicAuth(quote(self.client_id, safe=""), quote(secret, safe=""))
        try:
            endpoint = str(metadata["token_endpoint"])
            answer = self._http.post(endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as e:
            raise ProviderUnavailable(
                f"the OIDC token endpoint is unreachable ({type(e).__name__})"
            ) from e
        if answer.status_code >= 500:
            raise ProviderUnavailable(f"the OIDC token endpoint answered {answer.status_code}")
        if answer.status_code != 200:
            raise SignInRefused(
                f"the provider refused the code ({answer.status_code}); start again from /sign-in"
            )
        try:
            id_token = str(answer.json()["id_token"])
        except (ValueError, KeyError, TypeError) as e:
            raise ProviderUnavailable("the token endpoint's answer has no id_token") from e
        return self.verify(id_token, nonce)

    def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of a verified id_token (signature, iss, aud, exp, iat, nonce)."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as e:
            raise SignInRefused("the id_token is not a JWT") from e
        if header.get("alg") not in ALGORITHMS:
            raise SignInRefused(f"the id_token's algorithm {header.get('alg')!r} is not accepted")
        key = self._key(str(header.get("kid") or ""))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token, key=key.key, algorithms=ALGORITHMS, audience=self.client_id,
                issuer=self._discovered().get("issuer", self.issuer), leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError as e:
            raise SignInRefused("the id_token has expired; sign in again") from e
        except jwt.InvalidAudienceError as e:
            raise SignInRefused("the id_token was issued for another client") from e
        except jwt.InvalidIssuerError as e:
            raise SignInRefused("the id_token comes from another issuer") from e
        except jwt.InvalidSignatureError as e:
            raise SignInRefused("the id_token's signature does not verify") from e
        except jwt.PyJWTError as e:
            raise SignInRefused(f"the id_token is not valid ({type(e).__name__})") from e
        if not nonce or not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignInRefused("the id_token's nonce does not match this sign-in")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInRefused("the id_token names several audiences but not us as its azp")
        return claims

    def _discovered(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                url = f"{self.issuer}/.well-known/openid-configuration"
                document = self._get_json(url, "discovery document")
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(key), str):
                        raise ProviderUnavailable(f"the OIDC discovery document has no {key}")
                if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                    raise ProviderUnavailable(
                        "the OIDC discovery document names another issuer than "
                        f"TESSERA_OIDC_ISSUER ({self.issuer})"
                    )
                self._metadata = document
            return self._metadata

    def _key(self, kid: str) -> jwt.PyJWK:
        for refresh in (False, True):
            with self._lock:
                if self._keys is None or refresh:
                    document = self._get_json(str(self._discovered()["jwks_uri"]), "key set")
                    try:
                        self._keys = jwt.PyJWKSet.from_dict(document)
                    except jwt.PyJWTError as e:
                        raise ProviderUnavailable("the OIDC key set cannot be read") from e
                keys = [k for k in self._keys.keys if not kid or k.key_id == kid]
            if keys:
                return keys[0]
        raise SignInRefused("the id_token is signed with a key the provider does not publish")

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            answer = self._http.get(url)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as e:
            raise ProviderUnavailable(f"the OIDC {what} at {url} cannot be read") from e
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"the OIDC {what} at {url} is not a JSON object")
        return document


def challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def mapped_role(claims: dict[str, Any], settings: Settings) -> str | None:
    """The most powerful role `TESSERA_OIDC_ROLES` gives the role claim's values, if any."""
    if not settings.oidc_role_claim or not settings.oidc_roles:
        return None
    held = claims.get(settings.oidc_role_claim)
    values = {str(v) for v in held} if isinstance(held, list) else {str(held)} if held else set()
    granted = {settings.oidc_roles[v] for v in values if v in settings.oidc_roles}
    return next((role for role in _POWER if role in granted and role in ROLES), None)


def user_name(claims: dict[str, Any], settings: Settings) -> str:
    """The Tessera user the claims name (lower-cased), or SignInRefused."""
    claim = settings.oidc_user_claim
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        raise SignInRefused(f"the id_token has no {claim!r} claim to name a user")
    if claim == "email" and claims.get("email_verified") is False:
        raise SignInRefused("the provider has not verified this e-mail address")
    return value.strip().lower()


def admit(store: Store, settings: Settings, claims: dict[str, Any]) -> Admitted:
    """The user these verified claims sign in, their role set from the mapping.

    An existing user must be enabled. An unknown one is created only with auto-provision
    (role from the mapping, else the default role). Raises SignInRefused."""
    name = user_name(claims, settings)
    role = mapped_role(claims, settings)
    try:
        user = users.get(store, name)
    except NotFound:
        if not settings.oidc_auto_provision:
            raise SignInRefused(
                "no Tessera user has this name; an admin creates it with `tessera users "
                "create` (or sets TESSERA_OIDC_AUTO_PROVISION=true)"
            ) from None
        try:
            created = users.provision(store, name, role or settings.oidc_default_role)
        except InvalidField as e:
            raise SignInRefused(
                f"the {settings.oidc_user_claim!r} claim is no valid user name ({e.field}); "
                "set TESSERA_OIDC_USER_CLAIM to a claim such as preferred_username"
            ) from None
        users.signed_in(store, created.name)
        return Admitted(created.name, created.role, True)
    if not user.enabled:
        raise SignInRefused("this user is disabled; an admin can enable them again")
    if role and role != user.role:
        user = users.set_role(store, user.name, role)
    users.signed_in(store, user.name)
    return Admitted(user.name, user.role, False)


def expires_at(now: float | None = None) -> int:
    """When a begun sign-in must have come back by (ten minutes)."""
    return int((now if now is not None else time.time()) + 600)
