"""Shredding: a deleted data key must really die, on disk too (NIST SP 800-88's
cryptographic erase holds only if the key is the one copy that goes).

Deleting a row leaves its bytes in the table's file, as a dead tuple and then as free space
that VACUUM does not overwrite, and in the WAL, until both are rewritten. So every deletion
from ``consent_data_keys`` marks shredding due (a trigger, migration 0016), and one round of
the shredder, every ``REGISTRY_SHRED_INTERVAL`` seconds in each serving process:

1. takes the mark down (a key deleted from now on marks the next round);
2. rewrites the table (VACUUM FULL: the live keys go to a new file, the old file is
   truncated when the rewrite commits);
3. retires the WAL written so far (CHECKPOINT, a segment switch, CHECKPOINT): the server then
   deletes the old segments, when ``wal_recycle`` is off (the embedded server's setting; an
   operator's server needs it too, see docs/privacy.md).

Within one interval and a round's run time of an erasure, then, no file of the data
directory holds the erased record's data key, and so nothing sealed under it can be read,
wherever its ciphertext lies. A transaction open across the erasure can keep the deleted row
alive for the rewrite (it might still read it); the next erasure's round catches it.
Backups and replicas are the operator's: they hold the key until their own retention ends.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from registry.consent.repository import shredding

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["ShredRound", "shred_forever", "shred_once"]

log = logging.getLogger(__name__)

# A rewrite waits this long for the table's lock, then tries again next round, rather than
# hold every key read (every consent read and token issue) behind a long transaction.
_LOCK_TIMEOUT_MS = 5_000


class ShredRound(msgspec.Struct, kw_only=True, frozen=True):
    """What one round did: the oldest deletion it shredded, and whether the WAL was retired
    (False: the role may not checkpoint, so the server's own checkpoints retire it)."""

    due_since: datetime
    wal_retired: bool


async def shred_once(conn: asyncpg.Connection) -> ShredRound | None:
    """One round on an owner's connection outside a transaction; None when nothing was due."""
    since = await shredding.shred_due_since(conn)
    if since is None:
        return None
    await shredding.clear_due(conn)
    try:
        await shredding.rewrite_data_keys(conn, lock_timeout_ms=_LOCK_TIMEOUT_MS)
    except BaseException:
        # Not shredded: mark it due again (keeping nothing of the error's text, which could
        # name a row) and let the caller report it.
        await _mark_due_again(conn)
        raise
    try:
        await shredding.retire_wal(conn)
    except asyncpg.InsufficientPrivilegeError:
        return ShredRound(due_since=since, wal_retired=False)
    return ShredRound(due_since=since, wal_retired=True)


async def _mark_due_again(conn: asyncpg.Connection) -> None:
    try:
        await shredding.mark_due(conn)
    except (OSError, asyncpg.PostgresError):
        log.warning("shredding: could not mark a failed round as due again")


async def shred_forever(
    connect: Callable[[], Awaitable[asyncpg.Connection]], *, interval: float
) -> None:
    """Run a round every ``interval`` seconds on a fresh owner's connection, until cancelled;
    failures are logged (without row data) and the round comes again."""
    warned_wal = False
    while True:
        try:
            conn = await connect()
            try:
                done = await shred_once(conn)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("shredding round failed (%s); trying again", type(exc).__name__)
        else:
            if done is not None:
                log.info("shredded the data keys deleted since %s", done.due_since.isoformat())
                if not done.wal_retired and not warned_wal:
                    warned_wal = True
                    log.warning(
                        "shredding: the owner role may not CHECKPOINT or pg_switch_wal(), so "
                        "deleted keys stay in the WAL until the server's own checkpoints "
                        "retire it (grant pg_checkpoint; docs/privacy.md)"
                    )
        await asyncio.sleep(interval)
