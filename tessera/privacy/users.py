"""People who sign in: users with a role and an argon2id password hash.

Created, disabled and given a role by an admin (`tessera users ...`, the API, the
console). A disabled user cannot sign in, and their sessions and tokens stop working at
once: every request reads the user's row (`authenticate_session`, `tokens.authenticate`).
A user may also sign in through an OIDC provider (`privacy/oidc.py`), which may provision
them (`provision`: no password until an admin sets one).
"""

from __future__ import annotations

import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tessera.errors import Conflict, InvalidField, NotFound
from tessera.privacy.audit import iso_utc, utc_now
from tessera.privacy.roles import ROLES
from tessera.results import Result
from tessera.store import Store

#: argon2id with the library's defaults (RFC 9106's second recommended option).
_HASHER = PasswordHasher()
MIN_PASSWORD_CHARS = 12
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
#: Names that stand for something else in the audit log.
RESERVED = frozenset({"admin-token", "cli", "anonymous", "system"})


class User(Result):
    """A user as an admin sees it (never the hash)."""

    name: str
    role: str
    enabled: bool
    created_at: str
    updated_at: str
    last_sign_in: str | None


def _check_name(name: str) -> str:
    name = name.strip().lower()
    if not _NAME.match(name) or name in RESERVED:
        raise InvalidField(
            f"user name {name!r} must be 2-64 characters of a-z, 0-9, '.', '_', '@' or '-', "
            f"starting with a letter or digit, and not one of {', '.join(sorted(RESERVED))}",
            field="name",
            value=name,
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidField(
            f"role {role!r} is not one of {', '.join(ROLES)}", field="role", value=role
        )
    return role


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidField(
            f"the password has {len(password)} characters; it needs at least "
            f"{MIN_PASSWORD_CHARS} (a passphrase of a few words is easiest)",
            field="password",
        )
    return password


def create(store: Store, name: str, role: str, password: str) -> User:
    """A new enabled user. Raises InvalidField (name, role, password) or Conflict."""
    name, role = _check_name(name), check_role(role)
    password_hash = _HASHER.hash(_check_password(password))
    now = utc_now()
    with store.transaction():
        if store.fetch_one("SELECT 1 FROM users WHERE name = ?", [name]):
            raise Conflict(f"user {name!r} exists already; use set-role or disable")
        store.execute(
            "INSERT INTO users VALUES (?, ?, ?, TRUE, ?, ?, NULL)",
            [name, role, password_hash, now, now],
        )
    return get(store, name)


#: The password hash of a user who signs in only through OIDC: not an argon2 hash, so
#: `sign_in` (the hasher raises InvalidHashError) never matches a password against it.
NO_PASSWORD = "!oidc"


def provision(store: Store, name: str, role: str) -> User:
    """A user created at their first OIDC sign-in (`privacy/oidc.py`): no password until
    an admin sets one. Raises InvalidField (name, role) or Conflict."""
    name, role = _check_name(name), check_role(role)
    now = utc_now()
    with store.transaction():
        if store.fetch_one("SELECT 1 FROM users WHERE name = ?", [name]):
            raise Conflict(f"user {name!r} exists already")
        store.execute(
            "INSERT INTO users VALUES (?, ?, ?, TRUE, ?, ?, NULL)",
            [name, role, NO_PASSWORD, now, now],
        )
    return get(store, name)


def signed_in(store: Store, name: str, now: datetime | None = None) -> None:
    """Note a sign-in (the users list shows when each person last came)."""
    store.execute(
        "UPDATE users SET last_sign_in = ? WHERE name = ?",
        [now or utc_now(), name.strip().lower()],
    )


def get(store: Store, name: str) -> User:
    row = store.fetch_one(
        "SELECT name, role, enabled, created_at, updated_at, last_sign_in FROM users "
        "WHERE name = ?",
        [name.strip().lower()],
    )
    if row is None:
        raise NotFound(f"no user {name!r}; `tessera users list` shows them")
    return _user(row)


def listing(store: Store) -> list[User]:
    return [
        _user(row)
        for row in store.fetch_all(
            "SELECT name, role, enabled, created_at, updated_at, last_sign_in FROM users "
            "ORDER BY name"
        )
    ]


def set_role(store: Store, name: str, role: str) -> User:
    check_role(role)
    get(store, name)
    store.execute(
        "UPDATE users SET role = ?, updated_at = ? WHERE name = ?",
        [role, utc_now(), name.strip().lower()],
    )
    return get(store, name)


def set_enabled(store: Store, name: str, enabled: bool) -> User:
    get(store, name)
    store.execute(
        "UPDATE users SET enabled = ?, updated_at = ? WHERE name = ?",
        [enabled, utc_now(), name.strip().lower()],
    )
    return get(store, name)


def set_password(store: Store, name: str, password: str) -> User:
    get(store, name)
    store.execute(
        "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
        [_HASHER.hash(_check_password(password)), utc_now(), name.strip().lower()],
    )
    return get(store, name)


def sign_in(store: Store, name: str, password: str, now: datetime | None = None) -> User | None:
    """The user when `password` is theirs and they are enabled, else None (the caller
    records the failure; which of the two failed is not told)."""
    row = store.fetch_one(
        "SELECT password_hash, enabled FROM users WHERE name = ?", [name.strip().lower()]
    )
    if row is None:
        _HASHER.hash(password or "x")  # the same time whether the name exists or not
        return None
    try:
        _HASHER.verify(row[0], password)
    except (VerificationError, InvalidHashError):
        return None
    if not row[1]:
        return None
    store.execute(
        "UPDATE users SET last_sign_in = ? WHERE name = ?",
        [now or utc_now(), name.strip().lower()],
    )
    return get(store, name)


def active_role(store: Store, name: str) -> str | None:
    """The role of an enabled user, None when disabled or gone (every request asks)."""
    row = store.fetch_one("SELECT role, enabled FROM users WHERE name = ?", [name])
    return str(row[0]) if row and row[1] else None


def _user(row: tuple[object, ...]) -> User:
    name, role, enabled, created, updated, last = row
    return User(
        name=str(name),
        role=str(role),
        enabled=bool(enabled),
        created_at=iso_utc(created) or "",  # type: ignore[arg-type]
        updated_at=iso_utc(updated) or "",  # type: ignore[arg-type]
        last_sign_in=iso_utc(last),  # type: ignore[arg-type]
    )
