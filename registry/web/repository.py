"""The web pages' tables in PostgreSQL: console sessions and the images reviewers look at.

owns: web_sessions, review_images.

What the pages show of other domains (tickets, decisions, clients) they read through those
domains' repositories and services. Two triggers of migration 0008 act on these tables from
outside: ``review_tickets_forget_image`` (on the gate's ``review_tickets``) deletes a ticket's
image when the ticket is closed, whoever closes it; ``web_sessions`` rows go with their API
client (``ON DELETE CASCADE``). The gate writes ``review_images`` only through the function
the composition root injects (``ReviewImageStore.put``, which calls ``insert_review_image``).

Functions take a connection: callers own the transaction (and its unit of work).
"""

from __future__ import annotations

from datetime import datetime, timedelta  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "SessionRow",
    "delete_review_image",
    "delete_session",
    "insert_review_image",
    "insert_session",
    "purge_sessions",
    "review_image",
    "review_image_exists",
    "touch_session",
]


# Console sessions, keyed by the SHA-256 of the cookie's session id.


class SessionRow(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


async def insert_session(
    conn: asyncpg.Connection,
    *,
    id_hash: bytes,
    client_id: str,
    csrf_token: str,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO web_sessions (id_hash, client_id, csrf_token, created_at, last_seen_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
        id_hash,
        client_id,
        csrf_token,
        created_at,
        expires_at,
    )


async def touch_session(
    conn: asyncpg.Connection, id_hash: bytes, *, idle_timeout: timedelta
) -> SessionRow | None:
    """The session if it is neither past its expiry nor idle for ``idle_timeout``, marked
    used now; None otherwise."""
    row = await conn.fetchrow(
        "UPDATE web_sessions SET last_seen_at = now()"
        " WHERE id_hash = $1 AND expires_at > now() AND last_seen_at > now() - $2::interval"
        " RETURNING client_id, csrf_token, created_at, expires_at",
        id_hash,
        idle_timeout,
    )
    return None if row is None else SessionRow(**dict(row))


async def delete_session(conn: asyncpg.Connection, id_hash: bytes) -> bool:
    """End the session; True when there was one."""
    deleted = await conn.fetchval(
        "DELETE FROM web_sessions WHERE id_hash = $1 RETURNING 1", id_hash
    )
    return deleted is not None


async def purge_sessions(conn: asyncpg.Connection, *, idle_timeout: timedelta) -> int:
    """Delete sessions past their expiry or idle timeout; returns how many."""
    status: str = await conn.execute(
        "DELETE FROM web_sessions WHERE expires_at <= now()"
        " OR last_seen_at <= now() - $1::interval",
        idle_timeout,
    )
    return int(status.rsplit(" ", 1)[-1])


# Review images, sealed by the caller (``ReviewImageStore``).


async def insert_review_image(
    conn: asyncpg.Connection,
    *,
    decision_id: str,
    media_type: str,
    sealed: bytes,
    data_key_id: str,
) -> None:
    """Keep the image (idempotent: a decision's image is written once)."""
    await conn.execute(
        "INSERT INTO review_images (decision_id, media_type, sealed, data_key_id)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (decision_id) DO NOTHING",
        decision_id,
        media_type,
        sealed,
        data_key_id,
    )


async def review_image(
    conn: asyncpg.Connection, decision_id: str
) -> tuple[str, bytes, str | None] | None:
    """(media type, sealed bytes, data key id) of the decision's image, if it is kept."""
    row = await conn.fetchrow(
        "SELECT media_type, sealed, data_key_id FROM review_images WHERE decision_id = $1",
        decision_id,
    )
    if row is None:
        return None
    return row["media_type"], bytes(row["sealed"]), row["data_key_id"]


async def delete_review_images(conn: asyncpg.Connection, decision_ids: Sequence[str]) -> int:
    """Forget the images of these decisions; how many there were."""
    deleted = await conn.fetch(
        "DELETE FROM review_images WHERE decision_id = ANY($1::text[]) RETURNING 1",
        list(decision_ids),
    )
    return len(deleted)


async def expire_review_images(conn: asyncpg.Connection, older_than: datetime) -> int:
    """Forget every image kept since before ``older_than``; how many there were."""
    deleted = await conn.fetch(
        "DELETE FROM review_images WHERE created_at < $1 RETURNING 1", older_than
    )
    return len(deleted)


async def review_image_exists(conn: asyncpg.Connection, decision_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM review_images WHERE decision_id = $1", decision_id)
    return found is not None


async def delete_review_image(conn: asyncpg.Connection, decision_id: str) -> bool:
    """Forget the decision's image; True when there was one."""
    deleted = await conn.fetchval(
        "DELETE FROM review_images WHERE decision_id = $1 RETURNING 1", decision_id
    )
    return deleted is not None
