"""API clients: roles, tenants and API keys (shown once, stored as SHA-256).

A client holds any number of keys (table ``api_keys``); a key authenticates while it is not
revoked, not expired and its client is not revoked. Each request reads that from the database,
so a revocation holds on every service process from its commit on. The lifecycle operations
(listing, revoking, adding keys) are in ``registry.api_keys``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at runtime
from typing import TYPE_CHECKING

import msgspec

from registry.core.errors import Forbidden, InvalidRequest, InvalidToken, Unauthenticated

if TYPE_CHECKING:
    from collections.abc import Iterable

    import asyncpg

KEY_PREFIX = "rk_"
_KEY_PATTERN = re.compile(r"^rk_[A-Za-z0-9_-]{43}$")
_NAME_PATTERN = re.compile(r"^[\w .@:/-]{1,200}$")
_TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
SYSTEM_TENANT = "system"


class Role(enum.StrEnum):
    ADMIN = "admin"
    UPLOADER = "uploader"
    GENERATOR = "generator"
    PUBLISHER = "publisher"
    REVIEWER = "reviewer"


class Client(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    name: str
    tenant: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)

    def require(self, *roles: Role) -> None:
        if not self.has(*roles):
            wanted = " or ".join(r.value for r in roles)
            msg = f"this operation needs the {wanted} role"
            raise Forbidden(msg)


class NewKey(msgspec.Struct, kw_only=True, frozen=True):
    key_id: str
    api_key: str
    """Shown once; only its hash is stored."""
    created_at: datetime
    expires_at: datetime | None


class NewClient(msgspec.Struct, kw_only=True, frozen=True):
    client: Client
    api_key: str
    key: NewKey
    """The client's first key (``api_key`` is its secret)."""


class KeyMatch(msgspec.Struct, kw_only=True, frozen=True):
    """The client a presented key belongs to, and which of its keys it was."""

    client: Client
    key_id: str
    last_used_at: datetime | None


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def key_hash(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def validate_new_client(name: str, roles: Iterable[str], tenant: str) -> frozenset[Role]:
    if not _NAME_PATTERN.match(name):
        msg = "name must be 1-200 letters, digits, spaces or . @ : / _ -"
        raise InvalidRequest(msg)
    if not _TENANT_PATTERN.match(tenant):
        msg = "tenant must be 1-100 lowercase letters, digits, '.', '_' or '-'"
        raise InvalidRequest(msg)
    parsed: set[Role] = set()
    for role in roles:
        try:
            parsed.add(Role(role))
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            msg = f"unknown role {role!r}; roles are {allowed}"
            raise InvalidRequest(msg) from None
    if not parsed:
        msg = "a client needs at least one role"
        raise InvalidRequest(msg)
    return frozenset(parsed)


async def create_client(
    conn: asyncpg.Connection,
    *,
    name: str,
    roles: Iterable[str],
    tenant: str,
    api_key: str | None = None,
    expires_at: datetime | None = None,
) -> NewClient:
    """Insert a client and its first key; ``expires_at`` is checked by the caller."""
    parsed = validate_new_client(name, roles, tenant)
    client = Client(client_id="cl_" + secrets.token_hex(8), name=name, tenant=tenant, roles=parsed)
    # api_clients.key_hash stays NULL: keys live in api_keys (migration 0009).
    await conn.execute(
        "INSERT INTO api_clients (client_id, name, tenant, roles) VALUES ($1, $2, $3, $4)",
        client.client_id,
        client.name,
        client.tenant,
        sorted(r.value for r in parsed),
    )
    key = await insert_key(conn, client.client_id, api_key=api_key, expires_at=expires_at)
    return NewClient(client=client, api_key=key.api_key, key=key)


async def insert_key(
    conn: asyncpg.Connection,
    client_id: str,
    *,
    api_key: str | None = None,
    expires_at: datetime | None = None,
) -> NewKey:
    """Store a new key for ``client_id`` (generated unless given) and return it, secret included."""
    secret = api_key or generate_api_key()
    row = await conn.fetchrow(
        "INSERT INTO api_keys (key_id, client_id, key_hash, expires_at) VALUES ($1, $2, $3, $4)"
        " RETURNING key_id, created_at, expires_at",
        new_key_id(),
        client_id,
        key_hash(secret),
        expires_at,
    )
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    return NewKey(
        key_id=row["key_id"],
        api_key=secret,
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


def _client(row: asyncpg.Record) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        tenant=row["tenant"],
        roles=frozenset(Role(r) for r in row["roles"]),
    )


# One round trip, evaluated on the database's clock so that every process agrees on expiry.
_FIND_KEY = (
    "SELECT c.client_id, c.name, c.tenant, c.roles, k.key_id, k.key_hash, k.last_used_at,"
    " c.disabled_at IS NOT NULL AS client_revoked, k.revoked_at IS NOT NULL AS key_revoked,"
    " coalesce(k.expires_at <= now(), false) AS expired"
    " FROM api_keys k JOIN api_clients c USING (client_id) WHERE k.key_hash = $1"
)


async def authenticate(conn: asyncpg.Connection, authorization: str | None) -> Client:
    """Resolve an ``Authorization: Bearer`` header to its client, or raise Unauthenticated."""
    return (await authenticate_key(conn, authorization)).client


async def authenticate_key(conn: asyncpg.Connection, authorization: str | None) -> KeyMatch:
    """Like ``authenticate``, naming the key too.

    Raises Unauthenticated when no bearer token was sent, and its subclass InvalidToken when
    one was sent and refused: malformed, unknown, revoked, expired, or its client revoked.
    """
    if not authorization:
        msg = "send an API key as 'Authorization: Bearer <key>'"
        raise Unauthenticated(msg)
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        msg = "the API key is missing: send it as 'Authorization: Bearer <key>'"
        raise Unauthenticated(msg)
    # Shape check first: junk never reaches the database.
    if not _KEY_PATTERN.match(key):
        msg = "the API key is malformed"
        raise InvalidToken(msg)
    row = await conn.fetchrow(_FIND_KEY, key_hash(key))
    if row is None or not hmac.compare_digest(row["key_hash"], key_hash(key)):
        msg = "the API key is not valid"
        raise InvalidToken(msg)
    refusal = _refusal(row)
    if refusal is not None:
        raise InvalidToken(refusal)
    return KeyMatch(client=_client(row), key_id=row["key_id"], last_used_at=row["last_used_at"])


def _refusal(row: asyncpg.Record) -> str | None:
    # The caller holds the key, so saying why it stopped working tells them nothing new.
    if row["client_revoked"]:
        return "the API key's client was revoked"
    if row["key_revoked"]:
        return "the API key was revoked"
    if row["expired"]:
        return "the API key has expired"
    return None


async def get_client(conn: asyncpg.Connection, client_id: str) -> Client | None:
    row = await conn.fetchrow(
        "SELECT client_id, name, tenant, roles FROM api_clients"
        " WHERE client_id = $1 AND disabled_at IS NULL",
        client_id,
    )
    return None if row is None else _client(row)


def check_key_shape(api_key: str) -> None:
    if not _KEY_PATTERN.match(api_key):
        msg = (
            "REGISTRY_BOOTSTRAP_ADMIN_KEY must look like an API key: 'rk_' followed by 43 "
            "base64url characters (generate one with `registry clients new-key`)"
        )
        raise InvalidRequest(msg)


async def key_exists(conn: asyncpg.Connection, api_key: str) -> bool:
    """Whether this key was ever issued, revoked or expired ones included."""
    found = await conn.fetchval("SELECT 1 FROM api_keys WHERE key_hash = $1", key_hash(api_key))
    return found is not None
