"""API clients: roles, tenants and API keys (shown once, stored as SHA-256).

A client holds any number of keys (table ``api_keys``); a key authenticates while it is not
revoked, not expired and its client is not revoked. That is read from the database, or from
this process's ``KeyCache`` of recent lookups: a revocation holds on every service process at
most ``REGISTRY_API_KEY_CACHE_SECONDS`` after its commit (at once where it was made, and on
every process when the cache is off). The lifecycle operations (listing, revoking, adding
keys) are in ``registry.api_keys``; the rows they read and change are read and changed here.

owns: api_clients, api_keys. Authentication reads both in one statement, and a client and its
first key are created together, so both tables are core's, as is the statement every other
domain uses to check a client (``get_client``, ``enabled_clients``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at runtime
from typing import TYPE_CHECKING

import msgspec

from registry.core.errors import Forbidden, InvalidRequest, InvalidToken, Unauthenticated
from registry.core.tiers import DEFAULT_TIER, Tier

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager
    from datetime import timedelta

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
    tier: Tier = DEFAULT_TIER
    risk_factor: float = 1.0
    """The share of its tier's rate limit the client gets now (``registry.core.tiers``)."""
    risk_reasons: tuple[str, ...] = ()

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
    tier: Tier = DEFAULT_TIER,
) -> NewClient:
    """Insert a client and its first key; ``expires_at`` is checked by the caller."""
    parsed = validate_new_client(name, roles, tenant)
    client = Client(
        client_id="cl_" + secrets.token_hex(8), name=name, tenant=tenant, roles=parsed, tier=tier
    )
    # api_clients.key_hash stays NULL: keys live in api_keys (migration 0009).
    await conn.execute(
        "INSERT INTO api_clients (client_id, name, tenant, roles, tier)"
        " VALUES ($1, $2, $3, $4, $5)",
        client.client_id,
        client.name,
        client.tenant,
        sorted(r.value for r in parsed),
        tier,
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
        tier=row["tier"],
        risk_factor=row["risk_factor"],
        risk_reasons=tuple(row["risk_reasons"]),
    )


# One round trip, evaluated on the database's clock so that every process agrees on expiry.
_FIND_KEY = (
    "SELECT c.client_id, c.name, c.tenant, c.roles, c.tier, c.risk_factor, c.risk_reasons,"
    " k.key_id, k.key_hash, k.last_used_at,"
    " c.disabled_at IS NOT NULL AS client_revoked, k.revoked_at IS NOT NULL AS key_revoked,"
    " coalesce(k.expires_at <= now(), false) AS expired,"
    " extract(epoch FROM k.expires_at - now())::float8 AS expires_in"
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
    digest = key_hash(_bearer_key(authorization))
    match, _ = _checked(await conn.fetchrow(_FIND_KEY, digest), digest)
    return match


async def authenticate_cached(
    authorization: str | None,
    cache: KeyCache,
    connection: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]],
) -> KeyMatch:
    """Like ``authenticate_key``, answering from ``cache`` when it can: then no connection is
    taken from ``connection`` at all. Only keys that authenticated are cached."""
    digest = key_hash(_bearer_key(authorization))
    cached = cache.get(digest)
    if cached is not None:
        return cached
    generation = cache.generation
    async with connection() as conn:
        row = await conn.fetchrow(_FIND_KEY, digest)
    match, expires_in = _checked(row, digest)
    cache.put(digest, match, expires_in=expires_in, generation=generation)
    return match


def _bearer_key(authorization: str | None) -> str:
    """The API key of an ``Authorization: Bearer`` header, shape-checked."""
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
    return key


def _checked(row: asyncpg.Record | None, digest: bytes) -> tuple[KeyMatch, float | None]:
    """The match a looked-up row makes, with the seconds its key has left (None: no expiry),
    or InvalidToken."""
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        msg = "the API key is not valid"
        raise InvalidToken(msg)
    refusal = _refusal(row)
    if refusal is not None:
        raise InvalidToken(refusal)
    match = KeyMatch(client=_client(row), key_id=row["key_id"], last_used_at=row["last_used_at"])
    return match, row["expires_in"]


def _refusal(row: asyncpg.Record) -> str | None:
    # The caller holds the key, so saying why it stopped working tells them nothing new.
    if row["client_revoked"]:
        return "the API key's client was revoked"
    if row["key_revoked"]:
        return "the API key was revoked"
    if row["expired"]:
        return "the API key has expired"
    return None


class KeyCache:
    """Keys that authenticated recently in this process, by key hash (never the key itself).

    An entry lives ``ttl`` seconds at most, and never past its key's ``expires_at``, so an
    expired key is refused on time. A key revoked elsewhere (another process, the command
    line) is refused here at most ``ttl`` seconds after the revocation committed; ``forget``,
    called when this process revokes, drops every entry at once. Refusals are not cached: an
    unknown key costs a lookup each time, as without the cache. A ``ttl`` of 0 turns it off.
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, tuple[float, KeyMatch]] = {}
        self.generation = 0
        """Changes with every ``forget``: a lookup that began before one is not cached."""

    def get(self, digest: bytes) -> KeyMatch | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self._clock() >= entry[0]:
            del self._entries[digest]
            return None
        return entry[1]

    def put(
        self, digest: bytes, match: KeyMatch, *, expires_in: float | None, generation: int
    ) -> None:
        """Keep ``match`` if the cache is on and nothing was forgotten since ``generation``."""
        lifetime = self.ttl if expires_in is None else min(self.ttl, expires_in)
        if lifetime <= 0 or generation != self.generation:
            return
        if len(self._entries) >= self._max_entries and digest not in self._entries:
            # The oldest entry goes (dicts keep insertion order).
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = (self._clock() + lifetime, match)

    def forget(self) -> None:
        """Drop every entry, and keep lookups under way from adding theirs back."""
        self._entries.clear()
        self.generation += 1

    def __len__(self) -> int:
        return len(self._entries)


async def get_client(conn: asyncpg.Connection, client_id: str) -> Client | None:
    row = await conn.fetchrow(
        "SELECT client_id, name, tenant, roles, tier, risk_factor, risk_reasons FROM api_clients"
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


async def tenant_known(conn: asyncpg.Connection, tenant: str) -> bool:
    """Whether any client (revoked ones included) was ever made in ``tenant``: tenants exist
    only through their clients."""
    found = await conn.fetchval("SELECT 1 FROM api_clients WHERE tenant = $1 LIMIT 1", tenant)
    return found is not None


async def client_names(conn: asyncpg.Connection, client_ids: Sequence[str]) -> dict[str, str]:
    """The name of each of ``client_ids`` that exists, revoked ones included (a history names
    whoever acted then)."""
    if not client_ids:
        return {}
    rows = await conn.fetch(
        "SELECT client_id, name FROM api_clients WHERE client_id = ANY($1::text[])",
        sorted(set(client_ids)),
    )
    return {row["client_id"]: row["name"] for row in rows}


async def enabled_clients(conn: asyncpg.Connection, client_ids: Sequence[str]) -> set[str]:
    """Those of ``client_ids`` that exist and are not revoked."""
    rows = await conn.fetch(
        "SELECT client_id FROM api_clients"
        " WHERE client_id = ANY($1::text[]) AND disabled_at IS NULL",
        list(client_ids),
    )
    return {row["client_id"] for row in rows}


# The rows behind the key lifecycle (``registry.api_keys``, which decides what may change).


class KeyView(msgspec.Struct, kw_only=True, frozen=True):
    """A key without its secret (the secret is shown once, when the key is made)."""

    key_id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    """Updated at most once a minute, a few seconds after use."""


class ClientRow(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    name: str
    tenant: str
    roles: list[str]
    """Sorted."""
    created_at: datetime
    disabled_at: datetime | None
    tier: Tier
    risk_factor: float
    risk_reasons: list[str]
    risk_changed_at: datetime | None


# Statements are spelled out in full rather than assembled, so each reads as it runs.
# Serialises changes that could remove the last admin credential; any constant shared by
# every process ("REGIKEYS").
_ADMIN_CREDENTIALS_LOCK = 0x5245_4749_4B45_5953


def _client_row(row: asyncpg.Record) -> ClientRow:
    values = dict(row)
    values["roles"] = sorted(values["roles"])
    return ClientRow(**values)


def _key_view(row: asyncpg.Record) -> KeyView:
    return KeyView(**{name: row[name] for name in KeyView.__struct_fields__})


async def client_rows(conn: asyncpg.Connection) -> list[ClientRow]:
    """Every client, oldest first."""
    rows = await conn.fetch(
        "SELECT client_id, name, tenant, roles, created_at, disabled_at, tier, risk_factor,"
        " risk_reasons, risk_changed_at FROM api_clients"
        " ORDER BY created_at, client_id"
    )
    return [_client_row(row) for row in rows]


async def keys_by_client(conn: asyncpg.Connection) -> dict[str, list[KeyView]]:
    """Every key, by client, oldest first."""
    keys: dict[str, list[KeyView]] = {}
    for row in await conn.fetch(
        "SELECT client_id, key_id, created_at, expires_at, revoked_at, last_used_at"
        " FROM api_keys ORDER BY created_at, key_id"
    ):
        keys.setdefault(row["client_id"], []).append(_key_view(row))
    return keys


async def client_row(
    conn: asyncpg.Connection, client_id: str, *, lock: bool = False
) -> ClientRow | None:
    """The client, revoked or not; ``lock`` locks its row until the transaction ends."""
    select = (
        "SELECT client_id, name, tenant, roles, created_at, disabled_at, tier, risk_factor,"
        " risk_reasons, risk_changed_at FROM api_clients"
        " WHERE client_id = $1"
    )
    row = await conn.fetchrow(select + (" FOR UPDATE" if lock else ""), client_id)
    return None if row is None else _client_row(row)


async def keys_of(conn: asyncpg.Connection, client_id: str) -> list[KeyView]:
    """The client's keys, oldest first, revoked and expired ones included."""
    rows = await conn.fetch(
        "SELECT key_id, created_at, expires_at, revoked_at, last_used_at FROM api_keys"
        " WHERE client_id = $1 ORDER BY created_at, key_id",
        client_id,
    )
    return [_key_view(row) for row in rows]


async def lock_key(
    conn: asyncpg.Connection, key_id: str, client_id: str
) -> tuple[KeyView, bool] | None:
    """The client's key, locked, and whether it has expired (on the database's clock)."""
    row = await conn.fetchrow(
        "SELECT key_id, created_at, expires_at, revoked_at, last_used_at,"
        " coalesce(expires_at <= now(), false) AS expired"
        " FROM api_keys WHERE key_id = $1 AND client_id = $2 FOR UPDATE",
        key_id,
        client_id,
    )
    return None if row is None else (_key_view(row), bool(row["expired"]))


async def lock_admin_credentials(conn: asyncpg.Connection) -> None:
    """Serialise, until the transaction ends, the changes that could remove the last admin
    credential."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADMIN_CREDENTIALS_LOCK)


async def another_admin(
    conn: asyncpg.Connection, *, client_id: str | None = None, key_id: str | None = None
) -> bool:
    """Whether an enabled admin client other than ``client_id`` has a live key other than
    ``key_id``."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM api_keys k JOIN api_clients c USING (client_id)"
        " WHERE 'admin' = ANY (c.roles) AND c.disabled_at IS NULL AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now())"
        " AND c.client_id IS DISTINCT FROM $1 AND k.key_id IS DISTINCT FROM $2)",
        client_id,
        key_id,
    )
    return found


async def disable_client(conn: asyncpg.Connection, client_id: str) -> ClientRow | None:
    """Revoke the client now. The pre-0009 ``key_hash`` column is cleared too: no row keeps
    the hash of a key that stopped working."""
    row = await conn.fetchrow(
        "UPDATE api_clients SET disabled_at = now(), key_hash = NULL WHERE client_id = $1"
        " RETURNING client_id, name, tenant, roles, created_at, disabled_at, tier, risk_factor,"
        " risk_reasons, risk_changed_at",
        client_id,
    )
    return None if row is None else _client_row(row)


async def disable_key(conn: asyncpg.Connection, key_id: str) -> KeyView | None:
    """Revoke the key now, and clear the pre-0009 column where it still holds this key for
    processes of the previous release."""
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1"
        " RETURNING key_id, created_at, expires_at, revoked_at, last_used_at",
        key_id,
    )
    await conn.execute(
        "UPDATE api_clients c SET key_hash = NULL FROM api_keys k"
        " WHERE k.key_id = $1 AND c.client_id = k.client_id AND c.key_hash = k.key_hash",
        key_id,
    )
    return None if row is None else _key_view(row)


async def note_key_use(
    conn: asyncpg.Connection, used: Mapping[str, datetime], *, resolution: timedelta
) -> None:
    """Write when each key was last used, unless its stored time is under ``resolution`` old."""
    await conn.execute(
        "UPDATE api_keys k SET last_used_at = u.used_at"
        " FROM unnest($1::text[], $2::timestamptz[]) AS u (key_id, used_at)"
        " WHERE k.key_id = u.key_id"
        " AND (k.last_used_at IS NULL OR k.last_used_at <= u.used_at - $3::interval)",
        list(used),
        list(used.values()),
        resolution,
    )


async def set_tier(conn: asyncpg.Connection, client_id: str, tier: Tier) -> ClientRow | None:
    """Give the client ``tier``; None when there is no such client."""
    row = await conn.fetchrow(
        "UPDATE api_clients SET tier = $2 WHERE client_id = $1"
        " RETURNING client_id, name, tenant, roles, created_at, disabled_at, tier, risk_factor,"
        " risk_reasons, risk_changed_at",
        client_id,
        tier,
    )
    return None if row is None else _client_row(row)


class RiskSubject(msgspec.Struct, kw_only=True, frozen=True):
    """An enabled client as the risk worker sees it."""

    client_id: str
    tier: Tier
    age_days: float
    risk_factor: float
    risk_reasons: tuple[str, ...]


async def risk_subjects(conn: asyncpg.Connection) -> list[RiskSubject]:
    """Every enabled client, with its age on the database's clock and its current risk."""
    rows = await conn.fetch(
        "SELECT client_id, tier, risk_factor, risk_reasons,"
        " extract(epoch FROM now() - created_at)::float8 / 86400 AS age_days"
        " FROM api_clients WHERE disabled_at IS NULL ORDER BY client_id"
    )
    return [
        RiskSubject(
            client_id=r["client_id"],
            tier=r["tier"],
            age_days=r["age_days"],
            risk_factor=r["risk_factor"],
            risk_reasons=tuple(r["risk_reasons"]),
        )
        for r in rows
    ]


async def set_risk(
    conn: asyncpg.Connection, client_id: str, *, factor: float, reasons: Sequence[str]
) -> None:
    """Store the client's recomputed risk factor and its reasons, with the time."""
    await conn.execute(
        "UPDATE api_clients SET risk_factor = $2, risk_reasons = $3, risk_changed_at = now()"
        " WHERE client_id = $1",
        client_id,
        factor,
        list(reasons),
    )


# Serialises risk rounds across processes ("REGIRISK").
_RISK_ROUND_LOCK = 0x5245_4749_5249_534B


async def try_lock_risk_round(conn: asyncpg.Connection) -> bool:
    """Whether this transaction may run the risk round (no other process is running one)."""
    locked: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RISK_ROUND_LOCK)
    return locked
