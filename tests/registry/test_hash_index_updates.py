"""A process's hash index follows the database by deltas: what changed since it last read,
never less (a writer that commits after the read is seen next time), with the service's
own role on a real PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from moderation.exchange import ImportEntry
from registry.core import db
from registry.core.uow import unit_of_work
from registry.gate import HashLists, create_list, disable_entries, import_entries

PDQ_A = bytes(range(32))
PDQ_B = bytes(range(32, 64))


def entries(*hashes: bytes, reviewed: bool = True):
    return [
        ImportEntry(signal="pdq", hash=h, label=f"entry-{i}", reviewed=reviewed)
        for i, h in enumerate(hashes)
    ]


@pytest.fixture
async def service_pool(service_database_url):
    pool = await db.create_pool(service_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def make_list(pool, name="exchange", **changes):
    async with pool.acquire() as conn, unit_of_work(conn, actor="test", tenant="t1") as uow:
        await create_list(uow, name=name, signal="pdq", action="block", tenant="t1", **changes)


async def add(pool, name, items):
    async with pool.acquire() as conn, unit_of_work(conn, actor="test", tenant="t1") as uow:
        return await import_entries(uow, list_name=name, entries=items, quality_floor=50)


async def found(lists: HashLists, pool, value: bytes, distance: int = 0):
    async with pool.acquire() as conn:
        index = await lists.index(conn)
    return [(hit.list, hit.distance) for hit in index.match("pdq", [value], distance)]


async def test_changes_arrive_as_deltas(service_pool):
    await make_list(service_pool)
    await add(service_pool, "exchange", entries(PDQ_A))
    lists = HashLists(service_pool, acquire_timeout=5)
    await lists.refresh()
    assert await found(lists, service_pool, PDQ_A) == [("exchange", 0)]

    await add(service_pool, "exchange", entries(PDQ_B))
    assert await found(lists, service_pool, PDQ_B) == [("exchange", 0)]
    async with service_pool.acquire() as conn, unit_of_work(conn, actor="t", tenant="t1") as uow:
        assert await disable_entries(uow, list_name="exchange", hashes=[PDQ_A.hex()]) == 1
    assert await found(lists, service_pool, PDQ_A) == []
    async with service_pool.acquire() as conn:
        index = await lists.index(conn)
    # Two entries held: the disabled one was updated in place, not added again.
    assert index.count("pdq") == 2

    # Re-importing the disabled hash enables it again.
    await add(service_pool, "exchange", entries(PDQ_A))
    assert await found(lists, service_pool, PDQ_A) == [("exchange", 0)]


async def test_a_writer_that_commits_after_the_read_is_not_missed(service_pool):
    """Writer A takes its transaction id first, writer B commits its entries, the index reads
    B's, and A commits its own after: with an older id than what the index has read. Reading
    "rows newer than the newest seen" would miss A; the snapshot's horizon does not."""
    await make_list(service_pool)
    await make_list(service_pool, name="second")
    lists = HashLists(service_pool, acquire_timeout=5)
    await lists.refresh()
    writer = await service_pool.acquire()
    try:
        async with unit_of_work(writer, actor="test", tenant="t1") as uow:
            # A row lock gives A its transaction id now.
            await writer.execute("SELECT 1 FROM hash_lists WHERE name = 'exchange' FOR UPDATE")
            await add(service_pool, "second", entries(PDQ_B))
            assert await found(lists, service_pool, PDQ_B) == [("second", 0)]
            await import_entries(
                uow, list_name="exchange", entries=entries(PDQ_A), quality_floor=50
            )
        assert await found(lists, service_pool, PDQ_A) == [("exchange", 0)]
    finally:
        await service_pool.release(writer)


async def test_list_settings_and_new_lists_reach_the_index(service_pool):
    await make_list(service_pool, unreviewed_distance=4)
    await add(service_pool, "exchange", entries(PDQ_A, reviewed=False))
    lists = HashLists(service_pool, acquire_timeout=5)
    await lists.refresh()
    near = bytes([PDQ_A[0] ^ 0b11111]) + PDQ_A[1:]
    # Five bits away: within the band asked for, beyond the list's distance for unreviewed.
    assert await found(lists, service_pool, near, 31) == []
    await make_list(service_pool, name="second")
    await add(service_pool, "second", entries(PDQ_A))
    assert await found(lists, service_pool, near, 31) == [("second", 5)]


async def test_entries_need_a_list_and_lists_are_never_deleted(pool):
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO hash_list_entries (list_id, hash, label) VALUES (999, $1, 'x')",
                PDQ_A,
            )
    await make_list(pool)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("DELETE FROM hash_lists")
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("TRUNCATE hash_lists CASCADE")
        await conn.execute(
            "INSERT INTO hash_list_entries (list_id, hash, label)"
            " SELECT list_id, $1, 'x' FROM hash_lists",
            PDQ_A,
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("UPDATE hash_list_entries SET list_id = 999")
        assert await conn.fetchval("SELECT count(*) FROM hash_lists") == 1
