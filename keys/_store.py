"""The signing_keys table (migrations/0002); the only asyncpg user in ``keys``.

JSON travels as text in both directions, so these queries behave the same whether or not
the connection has a jsonb codec installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from datetime import datetime, timedelta
    from typing import TypeAlias

    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    # A pooled connection is a proxy, not a Connection subclass, in asyncpg's type stubs.
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

# Arbitrary constant shared by every process that creates or rotates keys ("KEYRING!").
_LOCK_ID = 0x4B45_5952_494E_4721


class KeyRow(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key_enc: bytes | None
    state: str
    retire_after: datetime | None


class HistoryRow(msgspec.Struct, frozen=True, kw_only=True):
    """A key that has signed: its public key and signing period (``signs_until`` None: active)."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    activated_at: datetime
    signs_until: datetime | None


async def lock(conn: Connection) -> None:
    """Wait for the key-management lock; it is held until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)


async def try_lock(conn: Connection) -> bool:
    """Take the key-management lock for this transaction, or return False at once."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_ID))


async def fetch_published(conn: Connection) -> tuple[list[KeyRow], datetime]:
    """Keys in next, active and retiring, oldest first, with the database's current time."""
    records = await conn.fetch(
        """
        SELECT kid, alg, public_jwk::text AS public_jwk, private_key_enc, state, retire_after,
               now() AS now
        FROM signing_keys
        WHERE state IN ('next', 'active', 'retiring')
        ORDER BY created_at, kid
        """
    )
    now: datetime = records[0]["now"] if records else await conn.fetchval("SELECT now()")
    rows = [
        KeyRow(
            kid=r["kid"],
            alg=r["alg"],
            public_jwk=msgspec.json.decode(r["public_jwk"]),
            private_key_enc=r["private_key_enc"],
            state=r["state"],
            retire_after=r["retire_after"],
        )
        for r in records
    ]
    return rows, now


async def fetch_history(conn: Connection) -> list[HistoryRow]:
    """Every key that has ever signed (retired ones included), in the order they started."""
    records = await conn.fetch(
        """
        SELECT kid, alg, public_jwk::text AS public_jwk, activated_at, signs_until
        FROM signing_keys
        WHERE activated_at IS NOT NULL
        ORDER BY activated_at, kid
        """
    )
    return [
        HistoryRow(
            kid=r["kid"],
            alg=r["alg"],
            public_jwk=msgspec.json.decode(r["public_jwk"]),
            activated_at=r["activated_at"],
            signs_until=r["signs_until"],
        )
        for r in records
    ]


async def retire_expired(conn: Connection) -> list[str]:
    """Move retiring keys whose retire_after has passed to retired; return their kids."""
    records = await conn.fetch(
        """
        UPDATE signing_keys SET state = 'retired', retired_at = now()
        WHERE state = 'retiring' AND retire_after <= now()
        RETURNING kid
        """
    )
    return [r["kid"] for r in records]


async def signing_kids(conn: Connection) -> dict[str, str]:
    """{state: kid} for the next and active keys, row-locked for the transaction."""
    records = await conn.fetch(
        "SELECT state, kid FROM signing_keys WHERE state IN ('next', 'active') FOR UPDATE"
    )
    return {r["state"]: r["kid"] for r in records}


async def insert_key(
    conn: Connection,
    *,
    kid: str,
    alg: str,
    public_jwk: dict[str, str],
    private_key_enc: bytes,
    state: str,
) -> None:
    await conn.execute(
        """
        INSERT INTO signing_keys (kid, alg, public_jwk, private_key_enc, state, activated_at)
        VALUES ($1, $2, $3::text::jsonb, $4, $5, CASE WHEN $5 = 'active' THEN now() END)
        """,
        kid,
        alg,
        msgspec.json.encode(public_jwk).decode(),
        private_key_enc,
        state,
    )


async def retire_active(
    conn: Connection, *, publish_for: timedelta, signs_for: timedelta
) -> datetime:
    """Active → retiring, published for ``publish_for`` more; its private key is erased.

    Its signing period ends ``signs_for`` from now (processes that have not reloaded the ring
    may sign with it until then); the row itself, public key included, is kept for good.
    """
    retire_after: datetime = await conn.fetchval(
        """
        UPDATE signing_keys
        SET state = 'retiring', retire_after = now() + $1::interval,
            signs_until = now() + $2::interval, private_key_enc = NULL
        WHERE state = 'active'
        RETURNING retire_after
        """,
        publish_for,
        signs_for,
    )
    return retire_after


async def activate_next(conn: Connection) -> None:
    await conn.execute(
        "UPDATE signing_keys SET state = 'active', activated_at = now() WHERE state = 'next'"
    )
