"""Secrets: write keys and the admin token. Stored hashed; compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

WRITE_KEY_PREFIX = "tsk_"
#: The decision API's key: safe to put in a web page (it reads decisions, nothing else).
PUBLISHABLE_KEY_PREFIX = "tpk_"


def new_write_key() -> str:
    """A fresh write key: 192 random bits, URL-safe, recognisable by its prefix."""
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(24)


def new_publishable_key() -> str:
    """A fresh publishable key for the decision API (192 random bits)."""
    return PUBLISHABLE_KEY_PREFIX + secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret. The secrets are random and long, so no salt or
    slow hash is needed (unlike passwords): a digest cannot be reversed or guessed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(secret: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), expected_hash)


def load_or_create_admin_token(path: Path, configured: str | None) -> str:
    """The admin token: TESSERA_ADMIN_TOKEN if set, else the one kept in `path`.

    On first start a token is generated and written with mode 0600, so only the owner
    of the data directory (and the CLI run by them) can read it.
    """
    if configured:
        return configured
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "tat_" + secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token
