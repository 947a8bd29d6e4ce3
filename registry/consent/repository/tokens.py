"""Issued tokens and the status lists that revoke them (``issued_tokens``, ``status_lists``).

A token's status lives on its own row (list id, index, status); a list is the set of those
rows, and its ``version`` moves whenever one of its statuses does. Other domains read a
token's status through these functions only: review directly, provenance through the
consent service (``registry.provenance.TokenChecker``), since the two are siblings.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at runtime
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "ListHead",
    "OpenList",
    "TokenRow",
    "close_status_list",
    "find_open_list",
    "insert_status_list",
    "insert_token",
    "lock_token_statuses",
    "restore_consent_tokens",
    "revoke_consent_tokens",
    "set_statuses",
    "status_at",
    "status_list_head",
    "suspend_consent_tokens",
    "token_statuses",
    "tokens_of",
]


class TokenRow(msgspec.Struct, kw_only=True, frozen=True):
    jti: str
    audience: str
    expires_at: datetime
    status: int
    status_list_id: str
    status_idx: int


class OpenList(msgspec.Struct, kw_only=True, frozen=True):
    list_id: str
    size: int


class ListHead(msgspec.Struct, kw_only=True, frozen=True):
    bits: int
    size: int
    version: int


# Issued tokens.


async def insert_token(
    conn: asyncpg.Connection,
    *,
    jti: str,
    consent_id: str,
    audience: str,
    uses: Sequence[str],
    asset_ids: Sequence[str],
    issued_at: datetime,
    expires_at: datetime,
    status_list_id: str,
    status_idx: int,
) -> bool:
    """False when the status index is taken (the caller draws another)."""
    inserted = await conn.fetchval(
        "INSERT INTO issued_tokens (jti, consent_id, audience, uses, asset_ids, issued_at,"
        " expires_at, status_list_id, status_idx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (status_list_id, status_idx) DO NOTHING RETURNING jti",
        jti,
        consent_id,
        audience,
        list(uses),
        list(asset_ids),
        issued_at,
        expires_at,
        status_list_id,
        status_idx,
    )
    return inserted is not None


async def tokens_of(conn: asyncpg.Connection, consent_id: str) -> list[TokenRow]:
    rows = await conn.fetch(
        "SELECT jti, audience, expires_at, status, status_list_id, status_idx FROM issued_tokens"
        " WHERE consent_id = $1"
        " ORDER BY issued_at, jti",
        consent_id,
    )
    return [msgspec.convert(dict(row), TokenRow) for row in rows]


async def token_statuses(conn: asyncpg.Connection, jtis: Sequence[str]) -> dict[str, int]:
    """The status now (0 valid, 1 revoked, 2 suspended) of each of these tokens we issued."""
    if not jtis:
        return {}
    rows = await conn.fetch(
        "SELECT jti, status FROM issued_tokens WHERE jti = ANY($1::text[])", list(set(jtis))
    )
    return {row["jti"]: row["status"] for row in rows}


async def lock_token_statuses(conn: asyncpg.Connection, jtis: Sequence[str]) -> dict[str, int]:
    """Like ``token_statuses``, the rows share-locked until the transaction ends, so a
    revocation cannot commit between this read and what the caller writes on its strength."""
    rows = await conn.fetch(
        "SELECT jti, status FROM issued_tokens WHERE jti = ANY($1::text[]) ORDER BY jti FOR SHARE",
        list(jtis),
    )
    return {row["jti"]: row["status"] for row in rows}


async def status_at(conn: asyncpg.Connection, list_id: str, idx: int) -> int | None:
    """The status of the token at (list, idx); None when no token of ours holds that index."""
    status: int | None = await conn.fetchval(
        "SELECT status FROM issued_tokens WHERE status_list_id = $1 AND status_idx = $2",
        list_id,
        idx,
    )
    return status


async def revoke_consent_tokens(
    conn: asyncpg.Connection, consent_id: str, status: int
) -> list[str]:
    """Set every token of the consent to ``status`` and move the versions of their lists; the
    jtis changed now, sorted."""
    rows = await conn.fetch(
        "UPDATE issued_tokens SET status = $2 WHERE consent_id = $1 AND status <> $2"
        " RETURNING jti, status_list_id, status",
        consent_id,
        status,
    )
    await _moved(conn, rows)
    return sorted(r["jti"] for r in rows)


async def suspend_consent_tokens(
    conn: asyncpg.Connection, consent_id: str, *, valid: int, status: int, fallback: int
) -> list[tuple[str, int]]:
    """Set the consent's ``valid`` tokens to ``status``, or to ``fallback`` where their list is
    too narrow to hold ``status``, and move their lists' versions; (jti, status set), sorted."""
    rows = await conn.fetch(
        "UPDATE issued_tokens t SET status = CASE WHEN (1 << l.bits) > $3 THEN $3 ELSE $4 END"
        " FROM status_lists l WHERE l.list_id = t.status_list_id AND t.consent_id = $1"
        " AND t.status = $2 RETURNING t.jti, t.status_list_id, t.status",
        consent_id,
        valid,
        status,
        fallback,
    )
    await _moved(conn, rows)
    return sorted((r["jti"], r["status"]) for r in rows)


async def restore_consent_tokens(
    conn: asyncpg.Connection, consent_id: str, *, status: int, valid: int
) -> list[str]:
    """Set the consent's tokens of ``status`` back to ``valid`` and move their lists'
    versions; the jtis changed, sorted."""
    rows = await conn.fetch(
        "UPDATE issued_tokens SET status = $3 WHERE consent_id = $1 AND status = $2"
        " RETURNING jti, status_list_id, status",
        consent_id,
        status,
        valid,
    )
    await _moved(conn, rows)
    return sorted(r["jti"] for r in rows)


async def _moved(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> None:
    """Move the version of every list one of these changed token rows is in, so signed copies
    cached by any process are rebuilt."""
    lists = sorted({r["status_list_id"] for r in rows})
    if lists:
        await conn.execute(
            "UPDATE status_lists SET version = version + 1 WHERE list_id = ANY($1::text[])", lists
        )


# Status lists.


async def find_open_list(conn: asyncpg.Connection, *, size: int, bits: int) -> OpenList | None:
    """The newest open list of this size and width."""
    row = await conn.fetchrow(
        "SELECT list_id, size FROM status_lists WHERE state = 'open' AND size = $1 AND bits = $2"
        " ORDER BY created_at DESC LIMIT 1",
        size,
        bits,
    )
    return None if row is None else OpenList(list_id=row["list_id"], size=row["size"])


async def insert_status_list(
    conn: asyncpg.Connection, list_id: str, *, bits: int, size: int
) -> None:
    await conn.execute(
        "INSERT INTO status_lists (list_id, bits, size) VALUES ($1, $2, $3)", list_id, bits, size
    )


async def close_status_list(conn: asyncpg.Connection, list_id: str) -> None:
    """No new tokens go to the list (it is dense enough)."""
    await conn.execute("UPDATE status_lists SET state = 'full' WHERE list_id = $1", list_id)


async def status_list_head(conn: asyncpg.Connection, list_id: str) -> ListHead | None:
    """The list's width, size and version; None for a list we never made."""
    row = await conn.fetchrow(
        "SELECT bits, size, version FROM status_lists WHERE list_id = $1", list_id
    )
    return (
        None
        if row is None
        else ListHead(bits=row["bits"], size=row["size"], version=row["version"])
    )


async def set_statuses(conn: asyncpg.Connection, list_id: str) -> list[tuple[int, int]]:
    """(index, status) of the list's tokens whose status is not 0."""
    rows = await conn.fetch(
        "SELECT status_idx, status FROM issued_tokens WHERE status_list_id = $1 AND status <> 0",
        list_id,
    )
    return [(row["status_idx"], row["status"]) for row in rows]
