"""The pool exhausted behind a lock, and a statement that waits for one too long.

Pool of 2, acquire timeout 1 s, lock timeout 3 s: two writes blocked on a lock the test holds
take both connections; a third request answers 503 within the acquire timeout (+0.5 s), and
requests succeed at once when the lock goes. A write that waits past the lock timeout answers
503 too, having stored nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from tests.faults import support
from tests.support import ADMIN_KEY, bearer

if TYPE_CHECKING:
    from pathlib import Path

ACQUIRE_TIMEOUT = 1.0
LOCK_TIMEOUT = 3.0
MARGIN = 0.5
ADMIN = bearer(ADMIN_KEY)


async def _create(http: httpx.AsyncClient, name: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.post(
        "/v1/admin/clients",
        json={"name": name, "roles": ["generator"], "tenant": "acme"},
        headers=ADMIN,
    )
    return response, time.monotonic() - started


async def _list(http: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.get("/v1/admin/clients", headers=ADMIN)
    return response, time.monotonic() - started


async def _waiting_on_locks(conn: asyncpg.Connection[Any], count: int) -> None:
    """Until ``count`` other sessions wait for a lock (at most 5 s)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    async with asyncio.timeout(5):
        while True:
            if await conn.fetchval(query) >= count:
                return
            await asyncio.sleep(0.05)


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"]


async def test_pool_exhausted_behind_a_lock_answers_503_in_time_and_recovers(
    fault_database: str, tmp_path: Path
) -> None:
    env = support.service_env(
        fault_database,
        tmp_path,
        support.free_port(),
        db_pool_min="1",
        db_pool_max="2",
        db_acquire_timeout=str(ACQUIRE_TIMEOUT),
        db_lock_timeout=str(LOCK_TIMEOUT),
        # Background work would take a pooled connection now and then; not during this test.
        hash_lists_poll_interval="3600",
        takedown_poll_interval="3600",
    )
    locker = await asyncpg.connect(fault_database)
    try:
        with support.running(env, tmp_path / "serve.log") as service:
            async with (
                httpx.AsyncClient(base_url=service.base_url, timeout=15) as http,
                asyncio.timeout(40),
            ):
                assert (await _list(http))[0].status_code == 200
                figures = await _exhaust(http, locker)
                figures["lock_timeout_503_s"] = await _outwait_lock(http, locker)
        print("pool figures:", json.dumps(figures))  # noqa: T201 - docs/reliability.md
        stored = await locker.fetchval("SELECT count(*) FROM api_clients WHERE name = 'too late'")
        assert stored == 0
    finally:
        await locker.close()


async def _exhaust(http: httpx.AsyncClient, locker: asyncpg.Connection[Any]) -> dict[str, float]:
    transaction = locker.transaction()
    await transaction.start()
    await locker.execute("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
    blocked = [asyncio.create_task(_create(http, f"blocked {i}")) for i in range(2)]
    await _waiting_on_locks(locker, 2)

    refused, waited = await _list(http)
    _unavailable(refused)
    assert ACQUIRE_TIMEOUT - 0.1 <= waited <= ACQUIRE_TIMEOUT + MARGIN, waited

    await transaction.commit()
    for response, _ in await asyncio.gather(*blocked):
        assert response.status_code == 201, response.text
    again, after = await _list(http)
    assert again.status_code == 200, again.text
    assert after < MARGIN, after
    return {"exhausted_503_s": round(waited, 3), "first_request_after_release_s": round(after, 3)}


async def _outwait_lock(http: httpx.AsyncClient, locker: asyncpg.Connection[Any]) -> float:
    transaction = locker.transaction()
    await transaction.start()
    await locker.execute("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
    try:
        refused, waited = await _create(http, "too late")
    finally:
        await transaction.rollback()
    _unavailable(refused)
    assert LOCK_TIMEOUT - 0.1 <= waited <= LOCK_TIMEOUT + MARGIN + 0.5, waited
    return round(waited, 3)
