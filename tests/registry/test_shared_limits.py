"""Rate limits for the whole service, not per process (issue 12): token buckets in PostgreSQL
by default, in Redis with REGISTRY_REDIS_URL (falling back to PostgreSQL while it is away).

Everything here runs against real parts: the tests' PostgreSQL, `registry serve` processes,
and a Redis where one answers (REGISTRY_TEST_REDIS_URL, or 127.0.0.1:6379); the tests that need
Redis skip without one, the PostgreSQL ones always run. With REGISTRY_RATE_LIMIT_PER_MINUTE=6 a
bucket holds 10 tokens and refills one every 10 seconds, so a test of a few seconds sees at
most one refilled token, and the bound allowed for it is computed from the time it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from registry.app import create_app
from registry.core import db
from registry.core.errors import RateLimited
from registry.core.ratelimit import Bucket, PostgresRateLimiter
from registry.core.settings import SettingsError, load
from tests.faults.support import Service, free_port, service_env
from tests.registry.cli_support import run
from tests.support import ADMIN_KEY, assert_problem, bearer, make_settings

log = logging.getLogger(__name__)
PER_MINUTE = 6
SLOW = Bucket.per_minute(PER_MINUTE)
BURST = 10
assert (SLOW.burst, SLOW.rate) == (BURST, 0.1)


def _redis_url() -> str | None:
    """REGISTRY_TEST_REDIS_URL, or a Redis answering PING on 127.0.0.1:6379, or None."""
    configured = os.environ.get("REGISTRY_TEST_REDIS_URL")
    if configured:
        return configured
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/0"
    except OSError:
        pass
    return None


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = _redis_url()
    if url is None:
        pytest.skip(
            "no Redis: set REGISTRY_TEST_REDIS_URL or run one on 127.0.0.1:6379 "
            "(the PostgreSQL limiter is tested without)"
        )
    return url


async def _outcome(limiter, key: str) -> RateLimited | None:
    try:
        await limiter.take(key)
    except RateLimited as exc:
        return exc
    return None


def _refill_bound(elapsed: float, bucket: Bucket = SLOW) -> int:
    """Tokens a bucket can have gained within ``elapsed`` seconds (rounded up)."""
    return math.ceil(elapsed * bucket.rate)


async def _race(limiters, key: str, n: int) -> tuple[list[RateLimited], float]:
    """``n`` checks of ``key`` at once, spread over ``limiters``; the refusals and the time."""
    started = time.monotonic()
    outcomes = await asyncio.gather(*(_outcome(limiters[i % len(limiters)], key) for i in range(n)))
    return [o for o in outcomes if o is not None], time.monotonic() - started


# PostgreSQL


async def test_two_limiters_on_separate_pools_share_one_bucket(service_database_url):
    pools = [await db.create_pool(service_database_url, min_size=1, max_size=8) for _ in range(2)]
    try:
        limiters = [PostgresRateLimiter(p, SLOW, acquire_timeout=5) for p in pools]
        refused, elapsed = await _race(limiters, "client:one", 40)
        excess = 40 - BURST
        log.info("postgres, two pools: %d refused of 40 in %.2f s", len(refused), elapsed)
        assert excess - _refill_bound(elapsed) <= len(refused) <= excess
        assert all(1 <= r.retry_after <= 10 for r in refused)
        assert {r.code for r in refused} == {"rate_limited"}
        # Another caller's bucket is its own.
        await limiters[0].take("client:two")
    finally:
        for p in pools:
            await p.close()


async def test_a_bucket_refills_on_the_database_clock_and_says_when(database_url, pool):
    def process():
        # A limiter of its own for each step, as another process would check: one that was
        # refused remembers it (next test) and would not ask the database this soon.
        return PostgresRateLimiter(pool, SLOW, acquire_timeout=5)

    limiter = process()
    for _ in range(BURST):
        await limiter.take("addr:192.0.2.1")
    refused = await _outcome(limiter, "addr:192.0.2.1")
    assert refused is not None
    assert refused.retry_after in {9, 10}  # (1 - tokens) / rate, tokens ~ 0
    conn = await asyncpg.connect(database_url)
    try:
        # Five seconds ago: half a token, still refused, and the wait says so.
        await conn.execute(
            "UPDATE rate_limit_buckets SET tokens = 0, updated_at = clock_timestamp()"
            " - interval '5 seconds'"
        )
        refused = await _outcome(process(), "addr:192.0.2.1")
        assert refused is not None
        assert refused.retry_after == 5
        # Eleven seconds more: a token, and only one.
        await conn.execute(
            "UPDATE rate_limit_buckets SET updated_at = updated_at - interval '11 seconds'"
        )
        limiter = process()
        assert await _outcome(limiter, "addr:192.0.2.1") is None
        assert await _outcome(limiter, "addr:192.0.2.1") is not None
        # Long untouched, a bucket is full again, never fuller.
        await conn.execute(
            "UPDATE rate_limit_buckets SET updated_at = updated_at - interval '1 day'"
        )
        refused, _ = await _race([process()], "addr:192.0.2.1", BURST + 1)
        assert len(refused) == 1
    finally:
        await conn.close()


async def test_a_refused_caller_is_refused_again_without_the_database(service_database_url):
    pool = await db.create_pool(service_database_url, min_size=1, max_size=2)
    limiter = PostgresRateLimiter(pool, SLOW, acquire_timeout=1)
    for _ in range(BURST):
        await limiter.take("client:flood")
    first = await _outcome(limiter, "client:flood")
    assert first is not None
    pool.terminate()
    # No connection to be had: the refusal still comes, from what the database said.
    again = await _outcome(limiter, "client:flood")
    assert again is not None
    assert again.retry_after <= first.retry_after
    # Another caller needs the database, and gets 503, not a pass.
    with pytest.raises(db.DatabaseError):
        await limiter.take("client:other")


async def test_prune_deletes_only_buckets_that_have_refilled(database_url, pool):
    limiter = PostgresRateLimiter(pool, SLOW, acquire_timeout=5)
    await limiter.take("client:recent")
    await limiter.take("client:idle")
    conn = await asyncpg.connect(database_url)
    try:
        # 100 s refill the whole burst at 0.1 a second, but a client's bucket may be as small
        # as one request a minute (600 s to refill): prune waits that long for every row.
        await conn.execute(
            "UPDATE rate_limit_buckets SET updated_at = clock_timestamp() - interval '101 s'"
            " WHERE key = 'client:recent'"
        )
        await conn.execute(
            "UPDATE rate_limit_buckets SET updated_at = clock_timestamp() - interval '601 s'"
            " WHERE key = 'client:idle'"
        )
        await limiter.prune()
        keys = {r["key"] for r in await conn.fetch("SELECT key FROM rate_limit_buckets")}
        assert keys == {"client:recent"}
    finally:
        await conn.close()


async def test_a_check_with_the_database_gone_is_a_database_error_never_a_pass(
    service_database_url,
):
    pool = await db.create_pool(service_database_url, min_size=1, max_size=2)
    limiter = PostgresRateLimiter(pool, SLOW, acquire_timeout=1)
    await limiter.take("client:x")
    pool.terminate()
    with pytest.raises(db.DatabaseError):
        await limiter.take("client:x")


async def test_limiter_checks_answer_503_when_the_database_is_gone(client, admin):
    # The admin key is cached after its first use, and /v1/uses reads nothing from the
    # database: with the pool gone, the rate-limit check is what fails, as a 503.
    assert (await client.get("/v1/admin/clients", headers=admin)).status_code == 200
    assert (await client.get("/v1/uses")).status_code == 200
    client.app.state.services.pool.terminate()
    for path, headers in (("/v1/uses", {}), ("/v1/admin/clients", admin)):
        response = await client.get(path, headers=headers)
        assert_problem(response, 503, "database_unavailable")
        assert response.headers["retry-after"] == "2"


def test_two_service_processes_on_one_database_limit_one_key_together(
    service_database_url, tmp_path
):
    """Two `registry serve` processes, one API key, 40 requests at once: 10 pass, as one
    process would allow, where per-process buckets let 20 through."""
    env_a = service_env(
        service_database_url,
        tmp_path / "a",
        free_port(),
        rate_limit_per_minute=str(PER_MINUTE),
    )
    # The same database and master key on another port; only the first makes the admin.
    env_b = {**env_a, "REGISTRY_PORT": str(free_port()), "REGISTRY_DATA_DIR": str(tmp_path / "b")}
    del env_b["REGISTRY_BOOTSTRAP_ADMIN_KEY"]
    services = [Service(env_a, tmp_path / "a.log"), Service(env_b, tmp_path / "b.log")]
    try:
        for service in services:
            service.wait_ready()
        # No request checked the limit yet (readiness is not limited): every bucket is full.
        responses, elapsed = asyncio.run(_burst([s.base_url for s in services], 40))
    finally:
        for service in services:
            service.stop()
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    excess = 40 - BURST
    limited = statuses.count(429)
    log.info("two `registry serve` processes: %d of 40 were 429 in %.2f s", limited, elapsed)
    assert excess - _refill_bound(elapsed) <= limited <= excess, (limited, elapsed)
    for response in responses:
        if response.status_code == 429:
            assert_problem(response, 429, "rate_limited")
            assert 1 <= int(response.headers["retry-after"]) <= 10
    # Both processes answered, and both refused.
    by_server = {str(r.url.copy_with(path="/")) for r in responses if r.status_code == 429}
    assert len(by_server) == 2


async def _burst(base_urls: list[str], n: int) -> tuple[list[httpx.Response], float]:
    async with httpx.AsyncClient(timeout=10) as http:
        started = time.monotonic()
        responses = await asyncio.gather(
            *(
                http.get(
                    f"{base_urls[i % len(base_urls)]}/v1/admin/clients", headers=bearer(ADMIN_KEY)
                )
                for i in range(n)
            )
        )
        return list(responses), time.monotonic() - started


# Settings and start


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:6379", "redis://", "redis://127.0.0.1:99999", "redis://host/zero"],
)
def test_a_malformed_redis_url_is_refused(url):
    with pytest.raises(SettingsError, match="REGISTRY_REDIS_URL"):
        load({"REGISTRY_REDIS_URL": url})


def test_the_redis_password_is_redacted():
    settings = load({"REGISTRY_REDIS_URL": "rediss://user:secret@redis.example:6380/2"})
    assert settings.redacted()["redis_url"] == "rediss://user:***@redis.example:6380/2"


def test_serve_refuses_to_start_when_redis_does_not_answer(tmp_path):
    data = tmp_path / "data"
    port = free_port()  # nothing listens there
    result = run(
        "serve",
        env={"REGISTRY_DATA_DIR": str(data), "REGISTRY_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"registry: configuration error: REGISTRY_REDIS_URL: Redis at 127.0.0.1:{port} did not"
        " answer (ConnectionError)\n"
    )
    # Checked first: no embedded PostgreSQL was started, no development key written.
    assert not data.exists()


# Redis


async def test_two_redis_limiters_share_one_bucket(redis_url, pool):
    from registry.core.ratelimit_redis import RedisRateLimiter, client

    fallback = PostgresRateLimiter(pool, SLOW, acquire_timeout=5)
    prefix = f"registry-test:{uuid.uuid4().hex}:"
    limiters = [
        RedisRateLimiter(client(redis_url), SLOW, fallback, prefix=prefix) for _ in range(2)
    ]
    try:
        refused, elapsed = await _race(limiters, "client:one", 40)
        excess = 40 - BURST
        log.info("redis, two clients: %d refused of 40 in %.2f s", len(refused), elapsed)
        assert excess - _refill_bound(elapsed) <= len(refused) <= excess
        assert all(1 <= r.retry_after <= 10 for r in refused)
        assert not any(limiter.falling_back for limiter in limiters)
        # Nothing went to PostgreSQL; Redis lets the bucket expire once it would be full.
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM rate_limit_buckets") == 0
        ttl = await limiters[0].redis.pttl(prefix + "client:one")
        assert 0 < ttl <= SLOW.refill_seconds * 1000
    finally:
        await limiters[0].redis.delete(prefix + "client:one")
        for limiter in limiters:
            await limiter.aclose()


class _Cuttable:
    """A TCP relay to Redis that the test can cut and restore: Redis going away (a network
    failure, a restart) without stopping a Redis other tests may share. Threads, not the
    test's event loop: the in-process app runs on a loop of its own."""

    def __init__(self, url: str) -> None:
        from registry.core.ratelimit_redis import where

        host, _, port = where(url).rpartition(":")
        self.target = (host, int(port))
        self.database = urlsplit(url).path.strip("/") or "0"
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            if self.listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone would not.
                with contextlib.suppress(OSError):
                    self.listener.shutdown(socket.SHUT_RDWR)
                self.listener.close()
                self.listener = None
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                inbound, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                outbound = socket.create_connection(self.target, timeout=2)
            except OSError:
                inbound.close()
                continue
            with self.lock:
                self.sockets += [inbound, outbound]
            for a, b in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


async def test_redis_going_away_falls_back_to_postgres_limits_never_none(
    redis_url, service_database_url, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="registry.core.ratelimit_redis")
    relay = _Cuttable(redis_url)
    relay.start()
    settings = make_settings(
        service_database_url, tmp_path, rate_limit_per_minute=PER_MINUTE, redis_url=relay.url
    )
    admin = bearer(ADMIN_KEY)
    try:
        async with AsyncTestClient(app=create_app(settings)) as http:
            limiter = http.app.state.services.limiter
            limiter.retry_interval = 0.2  # Redis is tried again this soon (5 s in service)
            for _ in range(4):
                assert (await http.get("/v1/admin/clients", headers=admin)).status_code == 200
            relay.cut()
            # PostgreSQL's bucket for this client is full: a burst, then 429, never more.
            statuses = []
            for _ in range(BURST + 5):
                statuses.append((await http.get("/v1/admin/clients", headers=admin)).status_code)
                await asyncio.sleep(0.02)
            assert statuses in ([200] * BURST + [429] * 5, [200] * (BURST + 1) + [429] * 4), (
                statuses
            )
            fell_back = [r for r in caplog.records if "fall back to PostgreSQL" in r.getMessage()]
            assert len(fell_back) == 1, "one warning per outage"
            assert fell_back[0].levelno == logging.WARNING
            assert fell_back[0].getMessage().endswith("(ConnectionError)")
            # Redis is back: its bucket (6 tokens left) counts again.
            relay.start()
            await asyncio.sleep(0.3)
            assert (await http.get("/v1/admin/clients", headers=admin)).status_code == 200
            assert not limiter.falling_back
            assert any("back on Redis" in r.getMessage() for r in caplog.records)
    finally:
        relay.cut()


async def test_with_redis_and_the_database_gone_a_check_is_a_database_error(
    service_database_url,
):
    from registry.core.ratelimit_redis import RedisRateLimiter, client

    pool = await db.create_pool(service_database_url, min_size=1, max_size=2)
    pool.terminate()
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RedisRateLimiter(
        client(nowhere), SLOW, PostgresRateLimiter(pool, SLOW, acquire_timeout=1)
    )
    try:
        with pytest.raises(db.DatabaseError):
            await limiter.take("client:x")
        assert limiter.falling_back
    finally:
        await limiter.aclose()
