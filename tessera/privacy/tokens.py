"""Personal API tokens: a user's bearer token for the admin API, with scopes and an expiry.

The token is shown once at creation; the store keeps its SHA-256 digest (it is random and
long, like a write key, so no slow hash is needed) and its first characters to recognise
it. A token acts as its user with their role narrowed by its scopes (`roles.grants`); it
stops working when it expires, is revoked, or its user is disabled.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from tessera.errors import InvalidField, NotFound
from tessera.privacy import users
from tessera.privacy.audit import iso_utc, utc_now
from tessera.privacy.keys import hash_secret
from tessera.privacy.roles import check_scopes
from tessera.results import Result
from tessera.store import Store

TOKEN_PREFIX = "tpt_"
_DURATION = re.compile(r"^(\d{1,5})([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class Token(Result):
    """A token as listed (never the secret)."""

    id: str
    user: str
    prefix: str
    scopes: list[str]
    description: str | None
    created_at: str
    expires_at: str | None
    revoked: bool
    last_used: str | None


class CreatedToken(Result):
    """A new token: `token` is shown this once."""

    token: str
    details: Token


@dataclass(frozen=True)
class Bearer:
    """Who a valid token speaks for."""

    token_id: str
    user: str
    role: str
    scopes: frozenset[str]


def expiry(text: str | None, now: datetime) -> datetime | None:
    """'90d', '12h', '2w', an ISO date, or None/'never' for no expiry."""
    if not text or text == "never":
        return None
    if match := _DURATION.match(text.strip()):
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        when = None
    if when is None or when <= now:
        raise InvalidField(
            f"expires must be a duration like 90d, 12h or 2w, a future ISO date, or never; "
            f"got {text!r}",
            field="expires",
            value=text,
        )
    return when


def create(
    store: Store,
    user: str,
    scopes: list[str],
    expires: str | None = "90d",
    description: str | None = None,
) -> CreatedToken:
    """A new token for `user`. Raises NotFound (user) or InvalidField (scopes, expires)."""
    owner = users.get(store, user)
    try:
        check_scopes(scopes or ["*"])
    except ValueError as e:
        raise InvalidField(str(e), field="scopes", value=scopes) from e
    now = utc_now()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = "tok_" + uuid.uuid4().hex[:12]
    store.execute(
        "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
        [
            *(token_id, owner.name, hash_secret(secret), secret[:10]),
            orjson.dumps(sorted(set(scopes or ["*"]))).decode(),
            *(description, now, expiry(expires, now)),
        ],
    )
    return CreatedToken(token=secret, details=get(store, token_id))


def get(store: Store, token_id: str) -> Token:
    row = store.fetch_one(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?", [token_id])
    if row is None:
        raise NotFound(f"no token {token_id!r}; `tessera tokens list` shows them")
    return _token(row)


def listing(store: Store, user: str | None = None) -> list[Token]:
    rows = store.fetch_all(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE ? IS NULL OR user_name = ? "
        "ORDER BY created_at DESC",
        [user, user],
    )
    return [_token(row) for row in rows]


def revoke(store: Store, token_id: str) -> Token:
    get(store, token_id)
    store.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
        [utc_now(), token_id],
    )
    return get(store, token_id)


def authenticate(store: Store, secret: str, now: datetime | None = None) -> Bearer | None:
    """The bearer a token speaks for, or None when unknown, expired, revoked or its user
    is disabled."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    now = now or utc_now()
    row = store.fetch_one(
        "SELECT id, user_name, scopes FROM api_tokens WHERE token_hash = ? "
        "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        [hash_secret(secret), now],
    )
    if row is None:
        return None
    role = users.active_role(store, row[1])
    if role is None:
        return None
    store.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", [now, row[0]])
    return Bearer(row[0], row[1], role, frozenset(orjson.loads(row[2])))


_COLUMNS = (
    "id, user_name, token_prefix, scopes, description, created_at, expires_at, "
    "revoked_at, last_used"
)


def _token(row: tuple[object, ...]) -> Token:
    token_id, user, prefix, scopes, description, created, expires, revoked, used = row
    return Token(
        id=str(token_id),
        user=str(user),
        prefix=str(prefix),
        scopes=list(orjson.loads(str(scopes))),
        description=description if isinstance(description, str) else None,
        created_at=iso_utc(created) or "",  # type: ignore[arg-type]
        expires_at=iso_utc(expires),  # type: ignore[arg-type]
        revoked=revoked is not None,
        last_used=iso_utc(used),  # type: ignore[arg-type]
    )
