"""The API key lifecycle: list clients and their keys, revoke a client, add and revoke keys.

Every change runs in the caller's unit of work and records its audit event there (as
``registry.operations`` does for client creation), so the change and its record commit
together, whether it came over HTTP or from the command line. Asking for what is already so
(revoking a revoked client or key) answers the current state and records nothing.

The service never locks itself out: a change that would leave no enabled admin client with a
live key is refused (``last_admin``). Such changes take one transaction-scoped advisory lock,
so two admins revoking each other at once cannot both succeed.

``KeyUsage`` keeps ``last_used_at`` off the request path: the auth guard notes which key was
used in memory, and a background task writes the batch every few seconds, each key at most
once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from registry.core import auth
from registry.core.auth import KeyView
from registry.core.errors import Conflict, InvalidRequest, NotFound
from registry.core.tiers import Tier, TierLimits, effective_limit

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    import asyncpg

    from registry.core.uow import UnitOfWork

__all__ = [
    "MAX_KEY_LIFETIME",
    "USAGE_FLUSH_SECONDS",
    "USAGE_RESOLUTION",
    "ClientNotFound",
    "ClientRevoked",
    "ClientView",
    "ExpiryInvalid",
    "KeyNotFound",
    "KeyUsage",
    "KeyView",
    "LastAdmin",
    "RateLimitView",
    "check_expiry",
    "get_client",
    "issue_key",
    "key_payload",
    "list_clients",
    "revoke_client",
    "revoke_key",
    "set_tier",
    "write_usage",
]

log = logging.getLogger(__name__)

MAX_KEY_LIFETIME = timedelta(days=3650)
"""The furthest ahead an ``expires_at`` may be (about ten years)."""
USAGE_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key."""
USAGE_FLUSH_SECONDS = 10.0
"""How often each process writes the keys it saw used."""

# Generated ids are cl_/key_ and 16 hex digits; anything else cannot name a row, so it never
# reaches the database (older or hand-made client ids fit the looser pattern).
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_KEY_ID = re.compile(r"^key_[0-9a-f]{16}$")


class ClientNotFound(NotFound):
    code = "client_not_found"


class KeyNotFound(NotFound):
    code = "key_not_found"


class ClientRevoked(Conflict):
    """The client is revoked: it gets no new keys (create a new client instead)."""

    code = "client_revoked"


class LastAdmin(Conflict):
    """The change would leave no enabled admin client with a live key."""

    code = "last_admin"


class ExpiryInvalid(InvalidRequest):
    code = "expires_at_invalid"


class ClientView(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    name: str
    tenant: str
    roles: list[str]
    created_at: datetime
    disabled_at: datetime | None
    """When the client was revoked; none of its keys authenticates after it."""
    keys: list[KeyView]
    """Oldest first, revoked and expired ones included."""
    rate_limit: RateLimitView


class RateLimitView(msgspec.Struct, kw_only=True, frozen=True):
    """The client's rate limit now: its tier's, scaled by its risk factor
    (``registry.core.tiers``)."""

    tier: Tier
    tier_limit_per_minute: int
    risk_factor: float
    risk_reasons: list[str]
    """Why the factor is below 1 (empty when it is 1)."""
    risk_changed_at: datetime | None
    """When the risk worker last changed the factor."""
    limit_per_minute: int
    """What the client gets: the tier's limit times the factor, at least 1."""


def check_expiry(expires_at: datetime | None, *, now: datetime | None = None) -> datetime | None:
    """``expires_at`` if it is in the future and at most MAX_KEY_LIFETIME away."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        msg = "expires_at must carry a UTC offset (RFC 3339)"
        raise ExpiryInvalid(msg)
    now = now or datetime.now(UTC)
    if expires_at <= now:
        msg = "expires_at must be in the future"
        raise ExpiryInvalid(msg)
    if expires_at > now + MAX_KEY_LIFETIME:
        msg = f"expires_at must be at most {MAX_KEY_LIFETIME.days} days from now"
        raise ExpiryInvalid(msg)
    return expires_at


def _view(row: auth.ClientRow, keys: list[KeyView], limits: TierLimits) -> ClientView:
    base = limits.of(row.tier)
    return ClientView(
        client_id=row.client_id,
        name=row.name,
        tenant=row.tenant,
        roles=row.roles,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        keys=keys,
        rate_limit=RateLimitView(
            tier=row.tier,
            tier_limit_per_minute=base,
            risk_factor=row.risk_factor,
            risk_reasons=row.risk_reasons,
            risk_changed_at=row.risk_changed_at,
            limit_per_minute=effective_limit(base, row.risk_factor),
        ),
    )


async def list_clients(conn: asyncpg.Connection, *, limits: TierLimits) -> list[ClientView]:
    """Every client with its keys and rate limit (under ``limits``), oldest first."""
    clients = await auth.client_rows(conn)
    keys = await auth.keys_by_client(conn)
    return [_view(row, keys.get(row.client_id, []), limits) for row in clients]


async def get_client(conn: asyncpg.Connection, client_id: str, *, limits: TierLimits) -> ClientView:
    """One client with its keys; ``client_not_found`` when there is none."""
    row = await _client_row(conn, client_id, lock=False)
    return await _with_keys(conn, row, limits)


async def set_tier(
    uow: UnitOfWork, client_id: str, tier: Tier, *, limits: TierLimits
) -> ClientView:
    """Give the client ``tier`` (revoked clients too: it is a record of the agreement)."""
    conn = uow.conn
    before = await _client_row(conn, client_id, lock=True)
    row = await auth.set_tier(conn, client_id, tier)
    assert row is not None  # noqa: S101 - locked above
    if before.tier != tier:
        uow.record(
            "client.tier_set",
            subject_type="api_client",
            subject_id=client_id,
            payload={"tenant": row.tenant, "tier": tier, "previous": before.tier},
        )
    return await _with_keys(conn, row, limits)


async def _client_row(conn: asyncpg.Connection, client_id: str, *, lock: bool) -> auth.ClientRow:
    row = None
    if _CLIENT_ID.match(client_id):
        row = await auth.client_row(conn, client_id, lock=lock)
    if row is None:
        msg = "there is no API client with this id"
        raise ClientNotFound(msg)
    return row


async def _with_keys(
    conn: asyncpg.Connection, row: auth.ClientRow, limits: TierLimits
) -> ClientView:
    return _view(row, await auth.keys_of(conn, row.client_id), limits)


async def _keep_an_admin(
    conn: asyncpg.Connection, *, client_id: str | None = None, key_id: str | None = None
) -> None:
    """Refuse to lose the client (or key) unless another admin can still sign in."""
    if not await auth.another_admin(conn, client_id=client_id, key_id=key_id):
        msg = (
            "this is the last enabled admin client with a live key; create or keep another "
            "admin first, so the service does not lock itself out"
        )
        raise LastAdmin(msg)


async def revoke_client(uow: UnitOfWork, client_id: str, *, limits: TierLimits) -> ClientView:
    """Revoke a client: none of its keys authenticates from the commit on. Idempotent."""
    conn = uow.conn
    await auth.lock_admin_credentials(conn)
    row = await _client_row(conn, client_id, lock=True)
    if row.disabled_at is not None:
        return await _with_keys(conn, row, limits)
    if auth.Role.ADMIN in row.roles:
        await _keep_an_admin(conn, client_id=client_id)
    # The pre-0009 column is cleared too: no row keeps the hash of a key that stopped working.
    revoked = await auth.disable_client(conn, client_id)
    assert revoked is not None  # noqa: S101 - locked above
    uow.record(
        "client.revoked",
        subject_type="api_client",
        subject_id=client_id,
        payload={"tenant": revoked.tenant},
    )
    return await _with_keys(conn, revoked, limits)


async def issue_key(uow: UnitOfWork, client_id: str, *, expires_at: datetime | None) -> auth.NewKey:
    """Add a key to an enabled client; its secret is in the answer and nowhere else."""
    conn = uow.conn
    expires_at = check_expiry(expires_at)
    # Locked so that a revocation running at the same time cannot miss the new key's client.
    row = await _client_row(conn, client_id, lock=True)
    if row.disabled_at is not None:
        msg = "this client is revoked; create a new client instead"
        raise ClientRevoked(msg)
    key = await auth.insert_key(conn, client_id, expires_at=expires_at)
    uow.record(
        "client.key_created",
        subject_type="api_client",
        subject_id=client_id,
        payload=key_payload(key.key_id, key.expires_at),
    )
    return key


async def revoke_key(uow: UnitOfWork, client_id: str, key_id: str) -> KeyView:
    """Revoke one key of a client; it stops authenticating from the commit on. Idempotent.

    A client may be left without a live key (add one, or revoke the client), except the last
    admin's.
    """
    conn = uow.conn
    await auth.lock_admin_credentials(conn)
    client = await _client_row(conn, client_id, lock=True)
    found = None
    if _KEY_ID.match(key_id):
        found = await auth.lock_key(conn, key_id, client_id)
    if found is None:
        msg = "this client has no key with this id"
        raise KeyNotFound(msg)
    key, expired = found
    if key.revoked_at is not None:
        return key
    # Only a key that still works counts as an admin credential.
    if auth.Role.ADMIN in client.roles and client.disabled_at is None and not expired:
        await _keep_an_admin(conn, key_id=key_id)
    # The pre-0009 column may still hold this key for processes of the previous release:
    # it is cleared too.
    revoked = await auth.disable_key(conn, key_id)
    assert revoked is not None  # noqa: S101 - locked above
    uow.record(
        "client.key_revoked",
        subject_type="api_client",
        subject_id=client_id,
        payload={"key_id": key_id},
    )
    return revoked


def key_payload(key_id: str, expires_at: datetime | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"key_id": key_id}
    if expires_at is not None:
        payload["expires_at"] = expires_at.astimezone(UTC).isoformat()
    return payload


class KeyUsage:
    """Which keys this process saw used, until the next flush writes them in one statement.

    Noting is a dict assignment on the request path; a key whose stored ``last_used_at`` is
    under a minute old is not even noted. The write's WHERE clause keeps the once-a-minute
    bound across processes too.
    """

    def __init__(self) -> None:
        self._used: dict[str, datetime] = {}

    def note(self, key_id: str, last_used_at: datetime | None) -> None:
        now = datetime.now(UTC)
        if last_used_at is not None and now - last_used_at < USAGE_RESOLUTION:
            return
        self._used[key_id] = now

    @property
    def pending(self) -> int:
        return len(self._used)

    async def flush(self, conn: asyncpg.Connection) -> None:
        if not self._used:
            return
        batch, self._used = self._used, {}
        try:
            await auth.note_key_use(conn, batch, resolution=USAGE_RESOLUTION)
        except BaseException:
            # Try again next time; a use noted meanwhile is newer and wins.
            for key_id, used_at in batch.items():
                self._used.setdefault(key_id, used_at)
            raise


async def write_usage(
    usage: KeyUsage,
    connection: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]],
    *,
    interval: float = USAGE_FLUSH_SECONDS,
) -> None:
    """Background task: flush ``usage`` every ``interval`` seconds, and once more when stopped."""
    try:
        while True:
            await asyncio.sleep(interval)
            await _flush(usage, connection)
    finally:
        await _flush(usage, connection)


async def _flush(
    usage: KeyUsage, connection: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
) -> None:
    if not usage.pending:
        return
    try:
        async with connection() as conn:
            await usage.flush(conn)
    except Exception as exc:  # noqa: BLE001 - a hint column must never stop the service
        log.warning("API key last_used_at not written: %s", type(exc).__name__)
