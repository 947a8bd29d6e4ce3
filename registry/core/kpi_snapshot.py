"""Figures computed by one service process at a time and read by all: the moderation KPIs.

The KPI gauges (``registry.review.metrics``) come from scans of the decision, ticket and
appeal tables. Each process used to run those scans every REGISTRY_STATS_REFRESH_INTERVAL;
now ``refresh`` runs them only when the stored snapshot (table ``kpi_snapshot``, migration
0011, one row) is older than the interval, and only in the process that wins
``pg_try_advisory_xact_lock``: the others, finding it taken, go on with the snapshot they
read. Whoever computes stores the result in the same transaction (the caller's unit of
work), and every process
publishes what it reads from that row, so all of them report the same values, at most one
interval old. A process that computes at start and then every interval keeps the role while
it lives; the others find the snapshot fresh on each of their rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    import asyncpg

# Arbitrary constant shared by every process of a deployment (db.py has the others).
_LOCK_ID = 0x5245_4749_4B50_4953  # "REGIKPIS"
_READ = (
    "SELECT computed_at, stats,"
    " computed_at <= clock_timestamp() - make_interval(secs => $1::float8) AS stale"
    " FROM kpi_snapshot WHERE id = 1"
)
# computed_at is the transaction's start (now()), before the figures were read.
_WRITE = (
    "INSERT INTO kpi_snapshot (id, computed_at, stats) VALUES (1, now(), $1)"
    " ON CONFLICT (id) DO UPDATE SET computed_at = excluded.computed_at, stats = excluded.stats"
    " RETURNING computed_at, stats"
)


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    computed_at: datetime
    stats: Any
    """The figures as JSON values (what ``compute`` returned, encoded and decoded)."""
    fresh: bool
    """Younger than the interval it was read for (else another process is computing)."""
    computed: bool
    """Computed by this call."""


async def refresh(
    conn: asyncpg.Connection,
    compute: Callable[[asyncpg.Connection], Awaitable[Any]],
    *,
    max_age: float,
) -> Snapshot | None:
    """The stored snapshot, recomputed first when older than ``max_age`` seconds and no other
    process is computing it; None while none was ever stored and another process is making
    the first.

    Call it inside a transaction (a unit of work, ``registry.core.uow``, which opens every
    write transaction): the lock is the transaction's and ends with it, and the new figures
    are stored when it commits. ``compute`` runs on ``conn``, in that transaction, and
    returns what the connection's JSON codec encodes (a msgspec struct, a dict).
    """
    if not conn.is_in_transaction():
        msg = "kpi_snapshot.refresh needs a transaction (run it in a unit of work)"
        raise RuntimeError(msg)
    row = await conn.fetchrow(_READ, max_age)
    if row is not None and not row["stale"]:
        return _snapshot(row, fresh=True, computed=False)
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_ID):
        return None if row is None else _snapshot(row, fresh=False, computed=False)
    # Read again: whoever held the lock just before may have stored a fresh one.
    row = await conn.fetchrow(_READ, max_age)
    if row is not None and not row["stale"]:
        return _snapshot(row, fresh=True, computed=False)
    stored = await conn.fetchrow(_WRITE, await compute(conn))
    assert stored is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    return _snapshot(stored, fresh=True, computed=True)


async def read(conn: asyncpg.Connection) -> Snapshot | None:
    """The stored snapshot as it is (``fresh`` is not judged: True), or None."""
    row = await conn.fetchrow(_READ, 0.0)
    return None if row is None else _snapshot(row, fresh=True, computed=False)


def _snapshot(row: asyncpg.Record, *, fresh: bool, computed: bool) -> Snapshot:
    return Snapshot(
        computed_at=row["computed_at"], stats=row["stats"], fresh=fresh, computed=computed
    )
