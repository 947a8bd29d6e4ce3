"""Console sign-in sessions, stored server-side in PostgreSQL.

The browser holds only a random session id (256 bits) in a cookie; the table holds its
SHA-256, the client it signed in as and the session's CSRF token. A session ends at its
absolute expiry, after a period without requests, at logout, or when its client is disabled.
The client's roles are read again on every request, so a role taken away applies at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from registry.core.auth import Client, get_client
from registry.web import repository

if TYPE_CHECKING:
    import asyncpg

    from registry.core.uow import UnitOfWork

__all__ = [
    "SessionSettings",
    "StartedSession",
    "WebSession",
    "csrf_matches",
    "end",
    "purge_expired",
    "resume",
    "start",
]

# token_urlsafe(32): 43 base64url characters.
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


class SessionSettings(msgspec.Struct, kw_only=True, frozen=True):
    ttl: timedelta
    """Absolute lifetime from sign-in."""
    idle_timeout: timedelta
    """A session unused for this long ends."""


class WebSession(msgspec.Struct, kw_only=True, frozen=True):
    client: Client
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return f"WebSession({self.client.client_id!r}, expires_at={self.expires_at.isoformat()})"


class StartedSession(msgspec.Struct, kw_only=True, frozen=True):
    session_id: str
    """The cookie value; shown once, stored only as its SHA-256."""
    session: WebSession

    def __repr__(self) -> str:
        return f"StartedSession({self.session!r})"


def _id_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("ascii")).digest()


async def start(uow: UnitOfWork, client: Client, settings: SessionSettings) -> StartedSession:
    """Store and record a new session for ``client``; returns the id to put in the cookie."""
    conn = uow.conn
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires_at = now + settings.ttl
    await repository.insert_session(
        conn,
        id_hash=_id_hash(session_id),
        client_id=client.client_id,
        csrf_token=csrf_token,
        created_at=now,
        expires_at=expires_at,
    )
    uow.record(
        "console.signed_in",
        subject_type="api_client",
        subject_id=client.client_id,
        payload={"expires_at": expires_at.isoformat()},
    )
    return StartedSession(
        session_id=session_id,
        session=WebSession(
            client=client, csrf_token=csrf_token, created_at=now, expires_at=expires_at
        ),
    )


async def resume(
    conn: asyncpg.Connection, session_id: str | None, settings: SessionSettings
) -> WebSession | None:
    """The live session for this cookie value (and mark it used), or None."""
    if not session_id or not _SESSION_ID.match(session_id):
        return None
    row = await repository.touch_session(
        conn, _id_hash(session_id), idle_timeout=settings.idle_timeout
    )
    if row is None:
        return None
    # Read now, with its roles: a disabled client's sessions end at their next request.
    client = await get_client(conn, row.client_id)
    if client is None:
        return None
    return WebSession(
        client=client,
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


async def end(uow: UnitOfWork, session_id: str | None) -> bool:
    """Delete the session behind this cookie value and record it; True when there was one."""
    if not session_id or not _SESSION_ID.match(session_id):
        return False
    if not await repository.delete_session(uow.conn, _id_hash(session_id)):
        return False
    uow.record("console.signed_out", subject_type="api_client", subject_id=uow.actor)
    return True


async def purge_expired(conn: asyncpg.Connection, settings: SessionSettings) -> int:
    """Delete sessions past their expiry or idle timeout; returns how many."""
    return await repository.purge_sessions(conn, idle_timeout=settings.idle_timeout)


def csrf_matches(expected: str, submitted: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the one it should carry."""
    if not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
