"""API clients: roles, tenants and API keys (shown once, stored as SHA-256)."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

import msgspec

from registry.errors import Forbidden, InvalidRequest, Unauthenticated

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


class NewClient(msgspec.Struct, kw_only=True, frozen=True):
    client: Client
    api_key: str


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


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
) -> NewClient:
    parsed = validate_new_client(name, roles, tenant)
    key = api_key or generate_api_key()
    client = Client(client_id="cl_" + secrets.token_hex(8), name=name, tenant=tenant, roles=parsed)
    await conn.execute(
        "INSERT INTO api_clients (client_id, name, tenant, roles, key_hash)"
        " VALUES ($1, $2, $3, $4, $5)",
        client.client_id,
        client.name,
        client.tenant,
        sorted(r.value for r in parsed),
        key_hash(key),
    )
    return NewClient(client=client, api_key=key)


def _client(row: asyncpg.Record) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        tenant=row["tenant"],
        roles=frozenset(Role(r) for r in row["roles"]),
    )


async def authenticate(conn: asyncpg.Connection, authorization: str | None) -> Client:
    """Resolve an ``Authorization: Bearer`` header to its client, or raise Unauthenticated."""
    if not authorization:
        msg = "send an API key as 'Authorization: Bearer <key>'"
        raise Unauthenticated(msg)
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    # Shape check first: junk never reaches the database.
    if scheme.lower() != "bearer" or not _KEY_PATTERN.match(key):
        msg = "the API key is missing or malformed"
        raise Unauthenticated(msg)
    row = await conn.fetchrow(
        "SELECT client_id, name, tenant, roles, key_hash FROM api_clients"
        " WHERE key_hash = $1 AND disabled_at IS NULL",
        key_hash(key),
    )
    if row is None or not hmac.compare_digest(row["key_hash"], key_hash(key)):
        msg = "the API key is not valid"
        raise Unauthenticated(msg)
    return _client(row)


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
    found = await conn.fetchval("SELECT 1 FROM api_clients WHERE key_hash = $1", key_hash(api_key))
    return found is not None
