"""The shredder's statements: whether a data key was deleted since the last round, the
rewrite of ``consent_data_keys`` and the retirement of the WAL that held the deleted keys.

They run on a connection as the tables' owner (VACUUM FULL needs it), outside any
transaction block (VACUUM and CHECKPOINT refuse one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    import asyncpg

__all__ = ["clear_due", "mark_due", "retire_wal", "rewrite_data_keys", "shred_due_since"]


async def shred_due_since(conn: asyncpg.Connection) -> datetime | None:
    """When the oldest data-key deletion not yet shredded happened; None: nothing is due."""
    since: datetime | None = await conn.fetchval("SELECT since FROM consent_shred_due")
    return since


async def clear_due(conn: asyncpg.Connection) -> None:
    """Take the mark down before the rewrite, so a key deleted during it marks the next round."""
    await conn.execute("DELETE FROM consent_shred_due")


async def mark_due(conn: asyncpg.Connection) -> None:
    """Mark shredding due again (a round that could not rewrite the table)."""
    await conn.execute(
        "INSERT INTO consent_shred_due DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING"
    )


async def rewrite_data_keys(conn: asyncpg.Connection, *, lock_timeout_ms: int) -> None:
    """Copy the live keys into a new file; the old one, with the deleted keys' bytes, is
    truncated when the rewrite commits. Gives up (LockNotAvailableError) rather than queue
    every key read behind a long transaction."""
    await conn.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
    try:
        await conn.execute("VACUUM FULL consent_data_keys")
    finally:
        await conn.execute("RESET lock_timeout")


async def retire_wal(conn: asyncpg.Connection) -> None:
    """End the WAL segments written before now: a checkpoint, a switch to a new segment and a
    checkpoint whose redo point lies in it, after which the server removes the old segments
    (it deletes them when wal_recycle is off; otherwise it renames them for reuse, and their
    old bytes stay until overwritten). Needs pg_checkpoint and EXECUTE on pg_switch_wal."""
    await conn.execute("CHECKPOINT")
    await conn.execute("SELECT pg_switch_wal()")
    await conn.execute("CHECKPOINT")
