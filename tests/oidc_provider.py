"""A small, real OpenID Connect provider on 127.0.0.1 for the sign-in tests.

It serves discovery, a JWKS with its own RSA key, `/authorize` (which signs in whoever
`claims` names at once and redirects back with a code) and `/token` (which checks the
client secret, the redirect URI and the PKCE verifier before answering an id_token). A
test sets `claims` for the next sign-in and `flaw` to make the id_token wrong in one way:
`bad_signature`, `wrong_audience`, `expired`, `wrong_nonce`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "fake-key-1"


class FakeProvider:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.claims: dict[str, Any] = {}
        self.flaw: str | None = None
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = query
                    back = {"code": code, "state": query["state"]}
                    self.send_response(302)
                    self.send_header("Location", f"{query['redirect_uri']}?{urlencode(back)}")
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.token_requests += 1
                expected = base64.b64encode(
                    f"{provider.client_id}:{provider.client_secret}".encode()
                ).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._json(401, {"error": "invalid_client"})
                    return
                asked = provider.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    asked is None
                    or asked["redirect_uri"] != form.get("redirect_uri")
                    or asked["code_challenge"] != challenge
                    or asked["code_challenge_method"] != "S256"
                ):
                    self._json(400, {"error": "invalid_grant"})
                    return
                self._json(200, {"access_token": "at", "token_type": "Bearer",
                                 "id_token": provider.id_token(asked["nonce"])})  # fmt: skip

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "sub": "s-1", "iat": now,
                  "exp": now + 300, "nonce": nonce, **self.claims}  # fmt: skip
        if self.flaw == "wrong_audience":
            claims["aud"] = "someone-else"
        elif self.flaw == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif self.flaw == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        key = self.other_key if self.flaw == "bad_signature" else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
