"""Database faults are DatabaseError (503 with Retry-After), wherever they surface: one
classification (``db.database_fault``), applied where a connection's block ends and, for
what escapes elsewhere, by the HTTP layer."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
import pytest

from registry.core import db
from registry.core.settings import SettingsError, load
from tests.support import assert_problem

FAULTS = [
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"
    ),
    asyncpg.InterfaceError("pool is closing"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
    asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
]
NOT_FAULTS = [
    asyncpg.UniqueViolationError("duplicate key value"),
    asyncpg.RaiseError("disk full"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    # Not raised by asyncpg: a file a handler reads, a timeout of its own.
    FileNotFoundError(2, "No such file or directory"),
    TimeoutError(),
    ValueError("no"),
]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"REGISTRY_DB_ACQUIRE_TIMEOUT": "0"}, "REGISTRY_DB_ACQUIRE_TIMEOUT"),
        ({"REGISTRY_DB_ACQUIRE_TIMEOUT": "nan"}, "REGISTRY_DB_ACQUIRE_TIMEOUT"),
        ({"REGISTRY_DB_STATEMENT_TIMEOUT": "0"}, "REGISTRY_DB_STATEMENT_TIMEOUT"),
        ({"REGISTRY_DB_STATEMENT_TIMEOUT": "1e400"}, "REGISTRY_DB_STATEMENT_TIMEOUT"),
        ({"REGISTRY_DB_STATEMENT_TIMEOUT": "601"}, "REGISTRY_DB_STATEMENT_TIMEOUT"),
        ({"REGISTRY_DB_LOCK_TIMEOUT": "-1"}, "REGISTRY_DB_LOCK_TIMEOUT"),
        (
            {"REGISTRY_DB_STATEMENT_TIMEOUT": "2", "REGISTRY_DB_LOCK_TIMEOUT": "5"},
            "REGISTRY_DB_LOCK_TIMEOUT",
        ),
    ],
)
def test_database_bounds_are_range_checked(values, named):
    with pytest.raises(SettingsError, match=named):
        load(values)


def test_database_bounds_default_to_10_and_3_seconds():
    settings = load({})
    assert (settings.db_statement_timeout, settings.db_lock_timeout) == (10.0, 3.0)
    bounds = db.session_bounds(statement_timeout=10.0, lock_timeout=3.0)
    assert bounds == {"statement_timeout": "10000", "lock_timeout": "3000"}


@pytest.mark.parametrize("exc", FAULTS, ids=lambda e: type(e).__name__)
def test_faults_are_database_errors(exc):
    assert isinstance(db.database_fault(exc), db.DatabaseError)


@pytest.mark.parametrize("exc", NOT_FAULTS, ids=lambda e: type(e).__name__)
def test_other_errors_are_not(exc):
    assert db.database_fault(exc) is None


async def test_the_unix_socket_gone_is_a_fault(tmp_path):
    # What a restart looks like from asyncpg: the socket file is missing.
    with pytest.raises(FileNotFoundError) as raised:
        await asyncpg.connect(f"postgresql://postgres@/postgres?host={tmp_path}")
    assert db.connection_lost(raised.value)
    assert isinstance(db.database_fault(raised.value), db.DatabaseError)


async def test_pool_sessions_carry_the_bounds_and_keep_them_after_a_migration(database_url):
    pool = await db.create_pool(database_url, statement_timeout=0.25, lock_timeout=0.1)
    try:
        async with db.acquire(pool, wait=1) as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "250ms"
            assert await conn.fetchval("SHOW lock_timeout") == "100ms"
            await db.migrate(conn)
            assert await conn.fetchval("SHOW statement_timeout") == "250ms"
            assert await conn.fetchval("SHOW lock_timeout") == "100ms"
    finally:
        await pool.close()


async def test_release_rolls_back_a_leaked_transaction_and_runs_no_reset_query(database_url):
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with db.acquire(pool, wait=1) as conn:
            await conn.execute("CREATE TABLE leak_probe (n int)")
            pid = conn.get_server_pid()
            # Session state the default reset (RESET ALL) would undo, and a transaction
            # opened behind asyncpg's back and never ended.
            await conn.execute("SET application_name = 'kept'")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO leak_probe VALUES (1)")
        async with db.acquire(pool, wait=1) as conn:
            assert conn.get_server_pid() == pid  # the same session, not a new one
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM leak_probe") == 0
            assert await conn.fetchval("SHOW application_name") == "kept"
    finally:
        await pool.close()


async def test_a_bounded_pool_arms_no_timer_per_query_and_an_unbounded_one_does(database_url):
    bounded = await db.create_pool(database_url, statement_timeout=2)
    unbounded = await db.create_pool(database_url)
    try:
        async with db.acquire(bounded, wait=1) as conn:
            # asyncpg arms a timer for every query when its command_timeout is set.
            assert conn._config.command_timeout is None
        async with db.acquire(unbounded, wait=1) as conn:
            assert conn._config.command_timeout == 30.0
    finally:
        await bounded.close()
        await unbounded.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux socket options")
def test_tcp_connections_to_the_server_give_up_after_the_backstop():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        db.watch_socket(tcp, dead_after=35)
        assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 35_000
        assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
    local, _ = socket.socketpair(socket.AF_UNIX)
    with local, _:
        db.watch_socket(local, dead_after=35)  # left alone
        assert local.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


async def test_a_statement_past_its_timeout_is_a_database_error(database_url):
    pool = await db.create_pool(database_url, max_size=1, statement_timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(db.DatabaseError) as raised:
            async with db.acquire(pool, wait=1) as conn, conn.transaction():
                await conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 1.5
        assert isinstance(raised.value.__cause__, asyncpg.QueryCanceledError)
        async with db.acquire(pool, wait=1) as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_lock_waited_for_too_long_is_a_database_error(database_url):
    pool = await db.create_pool(database_url, max_size=1, lock_timeout=0.2)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE api_clients IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(db.DatabaseError) as raised:
                async with db.acquire(pool, wait=1) as conn:
                    await conn.fetchval("SELECT count(*) FROM api_clients")
            assert time.monotonic() - started < 1.5
        assert isinstance(raised.value.__cause__, asyncpg.LockNotAvailableError)
    finally:
        await holder.close()
        await pool.close()


async def test_an_exhausted_pool_answers_within_the_acquire_timeout(database_url):
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with db.acquire(pool, wait=1):
            started = time.monotonic()
            with pytest.raises(db.DatabaseError, match="free in time"):
                async with db.acquire(pool, wait=0.3):
                    pass
            assert 0.25 < time.monotonic() - started < 0.8
    finally:
        await pool.close()


async def _refused(pool: asyncpg.Pool) -> float:
    started = time.monotonic()
    with pytest.raises(db.DatabaseError, match="free in time"):
        async with db.acquire(pool, wait=5):
            pass
    return time.monotonic() - started


async def test_a_request_waits_for_connections_once_not_per_acquire(database_url):
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with db.acquire(pool, wait=1):
            with db.wait_budget(0.4) as budget:
                first = await _refused(pool)
                second = await _refused(pool)
        assert 0.35 < first < 0.7
        assert second < 0.3
        assert budget.seconds <= 0
        # With the budget spent, a connection that is free is still taken.
        with db.wait_budget(0):
            async with db.acquire(pool, wait=1) as conn:
                assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def _kill_mid_block(pool: asyncpg.Pool, admin: asyncpg.Connection, pids: list[int]) -> None:
    async with db.acquire(pool, wait=1) as conn, conn.transaction():
        pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
        await admin.execute("SELECT pg_terminate_backend($1)", pids[-1])
        await asyncio.sleep(0.1)
        await conn.execute("SELECT 1")


async def test_a_connection_killed_mid_block_is_a_database_error_and_the_pool_recovers(
    database_url,
):
    pool = await db.create_pool(database_url, min_size=2, max_size=2)
    admin = await asyncpg.connect(database_url)
    killed: list[int] = []
    try:
        with pytest.raises(db.DatabaseError):
            await _kill_mid_block(pool, admin, killed)
        # The next acquires get live connections, none of them the dead one.
        for _ in range(3):
            async with db.acquire(pool, wait=1) as conn:
                assert await conn.fetchval("SELECT pg_backend_pid()") not in killed
    finally:
        await admin.close()
        await pool.close()


async def test_every_endpoint_answers_503_with_retry_after_once_the_pool_is_gone(client, admin):
    services = client.app.state.services
    services.pool.terminate()
    # The key ring reloads through the pool itself (outside db.acquire) once it is stale.
    await asyncio.sleep(0.3)
    for path, headers in (
        ("/v1/admin/clients", admin),
        ("/.well-known/jwks.json", {}),
        ("/v1/audit/checkpoint", {}),
    ):
        response = await client.get(path, headers=headers)
        assert_problem(response, 503, "database_unavailable")
        assert response.headers["retry-after"] == "2"
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "2"
