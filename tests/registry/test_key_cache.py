"""The per-process cache of API key lookups (REGISTRY_API_KEY_CACHE_SECONDS).

A revocation made elsewhere (another process, the command line, here the database itself) is
honoured within the cache interval; one made through this process's admin API at once; an
expiry on time; and an authenticated read takes one pooled connection, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import asyncpg
from litestar.testing import AsyncTestClient

from registry.app import create_app
from registry.core.auth import Client, KeyCache, KeyMatch, Role, key_hash
from tests.support import assert_problem, bearer, make_settings

CLIENTS = "/v1/admin/clients"
PROBE = "/v1/reviews"  # any authenticated GET; this one needs no role
TTL = 0.5


@contextlib.asynccontextmanager
async def _service(settings, tmp_path, ttl: float):
    changed = make_settings(
        settings.database_url,
        tmp_path,
        master_key=settings.master_key,
        api_key_cache_seconds=ttl,
    )
    async with AsyncTestClient(app=create_app(changed)) as http:
        yield http


async def _new_client(http, admin, **body) -> dict:
    made = await http.post(
        CLIENTS,
        json={"name": "cached", "roles": ["reviewer"], "tenant": "acme", **body},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    return made.json()


async def _status(http, key: str) -> int:
    response = await http.get(PROBE, headers=bearer(key))
    if response.status_code == 401:
        assert_problem(response, 401, "unauthenticated")
    return response.status_code


async def _key_id(http, admin, client_id: str) -> str:
    shown = (await http.get(f"{CLIENTS}/{client_id}", headers=admin)).json()
    return shown["keys"][0]["key_id"]


async def test_a_key_revoked_elsewhere_is_refused_within_the_interval(
    settings, tmp_path, admin, database_url
):
    async with _service(settings, tmp_path, TTL) as http:
        made = await _new_client(http, admin)
        assert await _status(http, made["api_key"]) == 200  # looked up, now cached
        conn = await asyncpg.connect(database_url)
        try:
            # What another process (or `registry clients remove-key`) commits.
            await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE client_id = $1", made["client_id"]
            )
        finally:
            await conn.close()
        await asyncio.sleep(TTL)
        assert await _status(http, made["api_key"]) == 401


async def test_a_revocation_through_this_process_is_honoured_at_once(settings, tmp_path, admin):
    # An interval far longer than the test: only dropping the entries refuses the keys.
    async with _service(settings, tmp_path, 60) as http:
        one = await _new_client(http, admin)
        two = await _new_client(http, admin)
        assert await _status(http, one["api_key"]) == 200
        assert await _status(http, two["api_key"]) == 200

        key_id = await _key_id(http, admin, one["client_id"])
        removed = await http.delete(f"{CLIENTS}/{one['client_id']}/keys/{key_id}", headers=admin)
        assert removed.status_code == 200, removed.text
        assert await _status(http, one["api_key"]) == 401

        revoked = await http.post(f"{CLIENTS}/{two['client_id']}/revoke", headers=admin)
        assert revoked.status_code == 200, revoked.text
        assert await _status(http, two["api_key"]) == 401


async def test_a_cached_key_is_refused_once_it_expires(settings, tmp_path, admin):
    async with _service(settings, tmp_path, 60) as http:
        expires = datetime.now(UTC) + timedelta(seconds=1.5)
        made = await _new_client(http, admin, expires_at=expires.isoformat())
        assert await _status(http, made["api_key"]) == 200
        await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
        assert await _status(http, made["api_key"]) == 401


async def test_an_authenticated_read_takes_one_connection(settings, tmp_path, admin):
    async with _service(settings, tmp_path, 60) as http:
        made = await _new_client(http, admin)
        services = http.app.state.services
        taken = 0
        connection = services.connection

        @contextlib.asynccontextmanager
        async def counted():
            nonlocal taken
            taken += 1
            async with connection() as conn:
                yield conn

        services.connection = counted
        assert await _status(http, made["api_key"]) == 200  # the guard's lookup, the handler's
        assert taken == 2
        taken = 0
        assert await _status(http, made["api_key"]) == 200
        assert taken == 1


async def test_with_the_cache_off_every_request_looks_its_key_up(
    settings, tmp_path, admin, database_url
):
    async with _service(settings, tmp_path, 0) as http:
        made = await _new_client(http, admin)
        assert await _status(http, made["api_key"]) == 200
        assert len(http.app.state.services.key_cache) == 0
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE api_clients SET disabled_at = now() WHERE client_id = $1",
                made["client_id"],
            )
        finally:
            await conn.close()
        assert await _status(http, made["api_key"]) == 401


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _match(n: int) -> KeyMatch:
    client = Client(client_id=f"cl_{n}", name="c", tenant="t", roles=frozenset({Role.ADMIN}))
    return KeyMatch(client=client, key_id=f"key_{n}", last_used_at=None)


def test_an_entry_lives_the_interval_or_until_its_key_expires():
    clock = _Clock()
    cache = KeyCache(5, clock=clock)
    cache.put(key_hash("a"), _match(1), expires_in=None, generation=cache.generation)
    cache.put(key_hash("b"), _match(2), expires_in=1.0, generation=cache.generation)
    clock.now += 0.99
    assert cache.get(key_hash("a")) == _match(1)
    assert cache.get(key_hash("b")) == _match(2)
    clock.now += 0.01
    assert cache.get(key_hash("b")) is None
    clock.now += 3.99
    assert cache.get(key_hash("a")) == _match(1)
    clock.now += 0.01
    assert cache.get(key_hash("a")) is None
    assert len(cache) == 0


def test_a_lookup_that_began_before_forget_is_not_cached():
    cache = KeyCache(5)
    began = cache.generation
    cache.forget()  # a revocation committed while the lookup read the old row
    cache.put(key_hash("a"), _match(1), expires_in=None, generation=began)
    assert cache.get(key_hash("a")) is None
    cache.put(key_hash("a"), _match(1), expires_in=None, generation=cache.generation)
    assert cache.get(key_hash("a")) == _match(1)


def test_the_cache_is_bounded_and_off_at_zero():
    cache = KeyCache(5, max_entries=2)
    for n in range(3):
        cache.put(key_hash(str(n)), _match(n), expires_in=None, generation=cache.generation)
    assert len(cache) == 2
    assert cache.get(key_hash("0")) is None  # the oldest went
    off = KeyCache(0)
    off.put(key_hash("a"), _match(1), expires_in=None, generation=off.generation)
    assert len(off) == 0
