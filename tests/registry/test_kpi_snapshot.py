"""The moderation KPI gauges are computed by one process at a time and read by all (issue 12).

Two refreshers stand for two service processes: each has a pool of its own on the same
database, as the service's role.
"""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest
from prometheus_client import REGISTRY

from registry.core import db, kpi_snapshot
from registry.core.uow import unit_of_work
from registry.review import Stats, compute_stats, publish_stats


@pytest.fixture
async def pools(service_database_url):
    made = [await db.create_pool(service_database_url, min_size=1, max_size=2) for _ in range(2)]
    yield made
    for pool in made:
        await pool.close()


class Counted:
    """``compute_stats``, counting its runs and slow enough for two refreshers to overlap."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self, conn):
        self.runs += 1
        await asyncio.sleep(0.3)
        return await compute_stats(conn)


async def _refresh(pool, compute, max_age):
    # As the service runs it: in a unit of work of its own.
    async with (
        db.acquire(pool, wait=5) as conn,
        unit_of_work(conn, actor="system", tenant=None) as uow,
    ):
        return await kpi_snapshot.refresh(uow.conn, compute, max_age=max_age)


async def _read(pool):
    async with db.acquire(pool, wait=5) as conn:
        return await kpi_snapshot.read(conn)


async def test_racing_refreshers_compute_once_per_interval_and_read_the_same(pools):
    compute = Counted()
    interval = 1.0
    first = await asyncio.gather(*(_refresh(p, compute, interval) for p in pools))
    assert compute.runs == 1
    # The winner computed; the other found the lock taken and no snapshot yet (or, had it
    # come after the winner committed, the winner's).
    computed = [s for s in first if s is not None and s.computed]
    assert len(computed) == 1
    (loser,) = (s for s in first if s is not computed[0])
    assert loser is None or (loser.fresh and loser.stats == computed[0].stats)
    # Within the interval nobody computes again, and both read what was stored.
    again = await asyncio.gather(*(_refresh(p, compute, interval) for p in pools))
    assert compute.runs == 1
    assert all(s is not None and s.fresh and not s.computed for s in again)
    assert again[0].stats == again[1].stats == computed[0].stats
    assert again[0].computed_at == again[1].computed_at == computed[0].computed_at
    # An interval later, one of them computes once more; the other keeps the stale one for
    # its round (it is told so, and looks again soon) or reads the new one.
    await asyncio.sleep(interval)
    later = await asyncio.gather(*(_refresh(p, compute, interval) for p in pools))
    assert compute.runs == 2
    stored = await asyncio.gather(*(_read(p) for p in pools))
    assert stored[0] == stored[1]
    new_at = stored[0].computed_at
    assert new_at > computed[0].computed_at
    assert [s.computed for s in later].count(True) == 1
    for snapshot in later:
        assert snapshot is not None
        if snapshot.fresh:
            assert snapshot.computed_at == new_at
        else:
            assert snapshot.computed_at == computed[0].computed_at


async def test_every_process_publishes_the_stored_figures(pools, database_url):
    snapshot = await _refresh(pools[0], compute_stats, 60.0)
    assert snapshot is not None
    # Stored as JSON, read back as the figures compute_stats made.
    stats = msgspec.convert(snapshot.stats, Stats)
    assert stats == await _computed_now(pools[1], stats)
    publish_stats(stats)
    assert REGISTRY.get_sample_value("registry_review_tickets_open") == stats.open_tickets
    other = await _read(pools[1])
    assert other is not None
    assert msgspec.convert(other.stats, Stats) == stats


async def _computed_now(pool, like: Stats) -> Stats:
    async with db.acquire(pool, wait=5) as conn:
        fresh = await compute_stats(conn)
    # Nothing changed in between but the clock.
    return msgspec.structs.replace(fresh, generated_at=like.generated_at)


async def test_the_service_stores_the_snapshot_it_publishes(client, database_url):
    # The lifespan's refresher computes at start: the row appears without any request.
    async def stored():
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchrow("SELECT computed_at, stats FROM kpi_snapshot")
        finally:
            await conn.close()

    for _ in range(50):
        row = await stored()
        if row is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None
    # The stored JSON (the raw connection has no codec) reads back as the figures.
    assert msgspec.json.decode(row["stats"], type=Stats).decisions == 0


async def test_a_refresh_outside_a_transaction_is_refused(pools):
    async with db.acquire(pools[0], wait=5) as conn:
        with pytest.raises(RuntimeError, match="unit of work"):
            await kpi_snapshot.refresh(conn, compute_stats, max_age=1.0)
