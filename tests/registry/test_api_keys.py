"""The API key lifecycle over HTTP: list, revoke clients, add and revoke keys, expiry, audit."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from registry.app import create_app
from registry.core import auth, db
from registry.core.tiers import parse_tier_limits
from tests.support import ADMIN_KEY, assert_problem, bearer

CLIENTS = "/v1/admin/clients"
CHALLENGE = 'Bearer realm="registry"'
REFUSED = 'Bearer realm="registry", error="invalid_token"'
# Any authenticated GET works as a probe; this one needs no role.
PROBE = "/v1/reviews"
LIMITS = parse_tier_limits(None, per_minute=1200)


async def _fetch(database_url: str, query: str, *args):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _execute(database_url: str, query: str, *args) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def _events(database_url: str, subject_id: str) -> list[tuple[str, dict]]:
    rows = await _fetch(
        database_url,
        "SELECT action, payload FROM audit_events WHERE subject_id = $1 ORDER BY seq",
        subject_id,
    )
    return [(r["action"], json.loads(r["payload"])) for r in rows]


async def _state(database_url: str) -> tuple:
    """Everything a refused change must leave as it was."""
    clients = await _fetch(database_url, "SELECT * FROM api_clients ORDER BY client_id")
    keys = await _fetch(database_url, "SELECT * FROM api_keys ORDER BY key_id")
    events = await _fetch(database_url, "SELECT count(*) AS n FROM audit_events")
    return [dict(r) for r in clients], [dict(r) for r in keys], events[0]["n"]


async def _works(client, headers) -> bool:
    """Whether the key authenticates (a 401 must carry the refused-token challenge)."""
    response = await client.get(PROBE, headers=headers)
    if response.status_code == 401:
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == REFUSED
        return False
    # Authenticated: 200, or 403 for a key without the reviewer role.
    assert response.status_code in {200, 403}, response.text
    return True


async def _bootstrap_id(client, admin) -> str:
    listed = (await client.get(CLIENTS, headers=admin)).json()["clients"]
    return next(c["client_id"] for c in listed if c["name"] == "bootstrap-admin")


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_revoked_client_gets_401_with_challenge(client, admin, make_client, database_url):
    client_id, key = await make_client("reviewer")
    assert await _works(client, key)

    revoked = await client.post(f"{CLIENTS}/{client_id}/revoke", headers=admin)

    assert revoked.status_code == 200, revoked.text
    body = revoked.json()
    assert body["client_id"] == client_id
    assert body["disabled_at"] is not None
    refused = await client.get(PROBE, headers=key)
    assert_problem(refused, 401, "unauthenticated")
    assert refused.headers["www-authenticate"] == REFUSED
    assert "revoked" in refused.json()["detail"]
    assert [a for a, _ in await _events(database_url, client_id)] == [
        "client.created",
        "client.revoked",
    ]


async def test_revoking_twice_answers_the_same_and_records_once(
    client, admin, make_client, database_url
):
    client_id, _ = await make_client("generator")
    first = await client.post(f"{CLIENTS}/{client_id}/revoke", headers=admin)
    second = await client.post(f"{CLIENTS}/{client_id}/revoke", headers=admin)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    actions = [a for a, _ in await _events(database_url, client_id)]
    assert actions.count("client.revoked") == 1


async def test_unknown_client_is_404_everywhere(client, admin, database_url):
    before = await _state(database_url)
    unknown = "cl_0000000000000000"
    for response in (
        await client.get(f"{CLIENTS}/{unknown}", headers=admin),
        await client.post(f"{CLIENTS}/{unknown}/revoke", headers=admin),
        await client.post(f"{CLIENTS}/{unknown}/keys", headers=admin),
        await client.delete(f"{CLIENTS}/{unknown}/keys/key_0000000000000000", headers=admin),
    ):
        assert_problem(response, 404, "client_not_found")
    assert await _state(database_url) == before


async def test_a_new_key_works_beside_the_old_until_the_old_is_revoked(
    client, admin, make_client, database_url
):
    client_id, old = await make_client("reviewer")
    [first] = (await client.get(f"{CLIENTS}/{client_id}", headers=admin)).json()["keys"]

    added = await client.post(f"{CLIENTS}/{client_id}/keys", headers=admin)

    assert added.status_code == 201, added.text
    new_key = added.json()
    assert set(new_key) == {"key_id", "api_key", "created_at", "expires_at"}
    assert new_key["expires_at"] is None
    new = bearer(new_key["api_key"])
    assert await _works(client, old)
    assert await _works(client, new)

    deleted = await client.delete(f"{CLIENTS}/{client_id}/keys/{first['key_id']}", headers=admin)

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["key_id"] == first["key_id"]
    assert deleted.json()["revoked_at"] is not None
    assert not await _works(client, old)
    assert await _works(client, new)
    again = await client.delete(f"{CLIENTS}/{client_id}/keys/{first['key_id']}", headers=admin)
    assert again.status_code == 200
    assert again.json() == deleted.json()
    assert await _events(database_url, client_id) == [
        (
            "client.created",
            {
                "tenant": "acme",
                "roles": ["reviewer"],
                "tier": "verified",
                "key_id": first["key_id"],
            },
        ),
        ("client.key_created", {"key_id": new_key["key_id"]}),
        ("client.key_revoked", {"key_id": first["key_id"]}),
    ]


async def test_a_client_may_be_left_without_a_live_key(client, admin, make_client):
    client_id, key = await make_client("publisher")
    [only] = (await client.get(f"{CLIENTS}/{client_id}", headers=admin)).json()["keys"]

    deleted = await client.delete(f"{CLIENTS}/{client_id}/keys/{only['key_id']}", headers=admin)

    assert deleted.status_code == 200
    assert not await _works(client, key)
    # Still enabled: a new key brings it back.
    added = (await client.post(f"{CLIENTS}/{client_id}/keys", headers=admin)).json()
    assert await _works(client, bearer(added["api_key"]))


async def test_expiring_keys(client, admin, make_client, database_url):
    client_id, _ = await make_client("reviewer")
    expires = _in(3600)
    added = await client.post(
        f"{CLIENTS}/{client_id}/keys", json={"expires_at": expires}, headers=admin
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert datetime.fromisoformat(body["expires_at"]) == datetime.fromisoformat(expires)
    key = bearer(body["api_key"])
    assert await _works(client, key)
    assert ("client.key_created", {"key_id": body["key_id"], "expires_at": expires}) in (
        await _events(database_url, client_id)
    )

    # Time passes (moved in the database: its clock decides expiry for every process).
    await _execute(
        database_url,
        "UPDATE api_keys SET created_at = now() - interval '2 hours',"
        " expires_at = now() - interval '1 second' WHERE key_id = $1",
        body["key_id"],
    )
    # The cached lookup would last until the old expiry, had time really passed (a cached key
    # expiring: tests/registry/test_key_cache.py); moving it in the database is a change
    # made behind this process's back.
    client.app.state.services.key_cache.forget()

    refused = await client.get(PROBE, headers=key)
    assert_problem(refused, 401, "unauthenticated")
    assert refused.headers["www-authenticate"] == REFUSED
    assert "expired" in refused.json()["detail"]


async def test_a_client_created_with_an_expiry(client, admin, database_url):
    expires = _in(86400)
    created = await client.post(
        CLIENTS,
        json={"name": "temp", "roles": ["reviewer"], "tenant": "acme", "expires_at": expires},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    # The answer keeps its shape; the expiry is on the key.
    assert set(body) == {"client_id", "name", "tenant", "roles", "api_key"}
    shown = (await client.get(f"{CLIENTS}/{body['client_id']}", headers=admin)).json()
    assert datetime.fromisoformat(shown["keys"][0]["expires_at"]) == datetime.fromisoformat(expires)
    [(action, payload)] = await _events(database_url, body["client_id"])
    assert action == "client.created"
    assert payload["expires_at"] == expires


async def test_listing_shows_no_secret(client, admin, make_client, database_url):
    client_id, key = await make_client("generator")
    await client.post(f"{CLIENTS}/{client_id}/keys", headers=admin)
    hashes = [bytes(r["key_hash"]) for r in await _fetch(database_url, "SELECT * FROM api_keys")]

    listed = await client.get(CLIENTS, headers=admin)
    shown = await client.get(f"{CLIENTS}/{client_id}", headers=admin)

    assert listed.status_code == shown.status_code == 200
    for response in (listed, shown):
        text = response.text
        assert "api_key" not in text
        assert "key_hash" not in text
        assert key["Authorization"].removeprefix("Bearer ") not in text
        assert ADMIN_KEY not in text
        for digest in hashes:
            assert digest.hex() not in text
    clients = {c["client_id"]: c for c in listed.json()["clients"]}
    assert clients[client_id] == shown.json()
    view = shown.json()
    assert set(view) == {
        "client_id",
        "name",
        "tenant",
        "roles",
        "created_at",
        "disabled_at",
        "keys",
        "rate_limit",
    }
    assert view["rate_limit"]["tier"] == "verified"
    assert len(view["keys"]) == 2
    assert set(view["keys"][0]) == {
        "key_id",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    }


async def test_admin_endpoints_need_the_admin_role(client, admin, make_client, database_url):
    target, _ = await make_client("generator")
    _, reviewer = await make_client("reviewer", tenant="system")
    [key] = (await client.get(f"{CLIENTS}/{target}", headers=admin)).json()["keys"]
    before = await _state(database_url)
    for response in (
        await client.get(CLIENTS, headers=reviewer),
        await client.get(f"{CLIENTS}/{target}", headers=reviewer),
        await client.post(f"{CLIENTS}/{target}/revoke", headers=reviewer),
        await client.post(f"{CLIENTS}/{target}/keys", headers=reviewer),
        await client.delete(f"{CLIENTS}/{target}/keys/{key['key_id']}", headers=reviewer),
    ):
        assert_problem(response, 403, "forbidden")
    assert await _state(database_url) == before


async def test_401_challenges(client):
    missing = await client.get(CLIENTS)
    assert_problem(missing, 401, "unauthenticated")
    # No token was sent: the challenge names no error (RFC 6750 section 3.1).
    assert missing.headers["www-authenticate"] == CHALLENGE
    basic = await client.get(CLIENTS, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert basic.headers["www-authenticate"] == CHALLENGE
    for token in ("rk_" + "B" * 43, "not-a-key"):
        refused = await client.get(CLIENTS, headers=bearer(token))
        assert_problem(refused, 401, "unauthenticated")
        assert refused.headers["www-authenticate"] == REFUSED


async def test_a_revoked_key_is_refused_by_another_process(settings, make_client, client, admin):
    """Two service processes on one database: a revocation through one holds on the other
    within the other's REGISTRY_API_KEY_CACHE_SECONDS."""
    interval = 0.5
    client_id, key = await make_client("reviewer")
    second_key = (await client.post(f"{CLIENTS}/{client_id}/keys", headers=admin)).json()
    cached = msgspec.structs.replace(settings, api_key_cache_seconds=interval)
    async with AsyncTestClient(app=create_app(cached)) as other:
        assert await _works(other, key)
        assert await _works(other, bearer(second_key["api_key"]))
        await client.delete(f"{CLIENTS}/{client_id}/keys/{second_key['key_id']}", headers=admin)
        await asyncio.sleep(interval)
        assert not await _works(other, bearer(second_key["api_key"]))
        assert await _works(other, key)
        await client.post(f"{CLIENTS}/{client_id}/revoke", headers=admin)
        await asyncio.sleep(interval)
        assert not await _works(other, key)


async def test_the_last_admin_cannot_be_revoked(client, admin, database_url):
    bootstrap = await _bootstrap_id(client, admin)
    [key] = (await client.get(f"{CLIENTS}/{bootstrap}", headers=admin)).json()["keys"]
    before = await _state(database_url)

    assert_problem(
        await client.post(f"{CLIENTS}/{bootstrap}/revoke", headers=admin), 409, "last_admin"
    )
    assert_problem(
        await client.delete(f"{CLIENTS}/{bootstrap}/keys/{key['key_id']}", headers=admin),
        409,
        "last_admin",
    )
    assert await _state(database_url) == before
    assert await _works(client, admin)


async def test_an_admin_can_go_once_another_remains(client, admin, database_url):
    bootstrap = await _bootstrap_id(client, admin)
    created = await client.post(
        CLIENTS,
        json={"name": "second admin", "roles": ["admin"], "tenant": "system"},
        headers=admin,
    )
    second = bearer(created.json()["api_key"])
    second_id = created.json()["client_id"]

    # The bootstrap admin revokes itself; the second admin now holds the only way in...
    assert (await client.post(f"{CLIENTS}/{bootstrap}/revoke", headers=admin)).status_code == 200
    assert not await _works(client, admin)
    [key] = (await client.get(f"{CLIENTS}/{second_id}", headers=second)).json()["keys"]
    assert_problem(
        await client.delete(f"{CLIENTS}/{second_id}/keys/{key['key_id']}", headers=second),
        409,
        "last_admin",
    )
    # ...unless it adds a key first.
    await client.post(f"{CLIENTS}/{second_id}/keys", headers=second)
    deleted = await client.delete(f"{CLIENTS}/{second_id}/keys/{key['key_id']}", headers=second)
    assert deleted.status_code == 200
    actions = [a for a, _ in await _events(database_url, bootstrap)]
    assert actions == ["client.created", "client.revoked"]


async def test_a_revoked_bootstrap_key_stays_revoked_after_a_restart(settings, admin, client):
    created = await client.post(
        CLIENTS, json={"name": "keeper", "roles": ["admin"], "tenant": "system"}, headers=admin
    )
    keeper = bearer(created.json()["api_key"])
    bootstrap = await _bootstrap_id(client, admin)
    assert (await client.post(f"{CLIENTS}/{bootstrap}/revoke", headers=keeper)).status_code == 200
    async with AsyncTestClient(app=create_app(settings)) as restarted:
        assert not await _works(restarted, admin)
        listed = (await restarted.get(CLIENTS, headers=keeper)).json()["clients"]
    assert [c["name"] for c in listed].count("bootstrap-admin") == 1


async def test_a_revoked_client_gets_no_new_key(client, admin, make_client, database_url):
    client_id, _ = await make_client("generator")
    await client.post(f"{CLIENTS}/{client_id}/revoke", headers=admin)
    before = await _state(database_url)

    response = await client.post(f"{CLIENTS}/{client_id}/keys", headers=admin)

    assert_problem(response, 409, "client_revoked")
    assert await _state(database_url) == before


async def test_a_key_of_another_client_is_404(client, admin, make_client, database_url):
    first, _ = await make_client("generator")
    second, second_key = await make_client("reviewer")
    [theirs] = (await client.get(f"{CLIENTS}/{second}", headers=admin)).json()["keys"]
    before = await _state(database_url)

    for key_id in (theirs["key_id"], "key_0000000000000000", "nonsense", "key_" + "f" * 200):
        response = await client.delete(f"{CLIENTS}/{first}/keys/{key_id}", headers=admin)
        assert_problem(response, 404, "key_not_found")
    assert await _state(database_url) == before
    assert await _works(client, second_key)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"expires_at": null, "extra": 1}', 400, "unknown_field"),
        (b'{"expires_at": "2020-01-01T00:00:00Z"}', 422, "expires_at_invalid"),
        (b'{"expires_at": "9999-12-31T23:59:59Z"}', 422, "expires_at_invalid"),
        (b'{"expires_at": "2030-01-01T00:00:00"}', 400, "invalid_value"),  # no offset
        (b'{"expires_at": "2030-01-01"}', 400, "invalid_value"),
        (b'{"expires_at": "next tuesday"}', 400, "invalid_value"),
        (b'{"expires_at": 1893456000}', 400, "invalid_type"),
        (b'{"expires_at": "2030-01-01T00:00:00Z", "expires_at": null}', 400, "duplicate_key"),
        (b"[]", 400, "invalid_type"),
        (b'{"expires_at": ', 400, "malformed_json"),
    ],
)
async def test_bad_key_bodies_are_4xx_and_change_nothing(
    client, admin, make_client, database_url, body, status, code
):
    client_id, _ = await make_client("generator")
    before = await _state(database_url)

    response = await client.post(
        f"{CLIENTS}/{client_id}/keys",
        content=body,
        headers={**admin, "Content-Type": "application/json"},
    )

    assert_problem(response, status, code)
    assert await _state(database_url) == before


async def test_a_key_body_must_be_json(client, admin, make_client, database_url):
    client_id, _ = await make_client("generator")
    before = await _state(database_url)
    response = await client.post(
        f"{CLIENTS}/{client_id}/keys",
        content=b"expires_at=tomorrow",
        headers={**admin, "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "unsupported_media_type")
    assert await _state(database_url) == before


@pytest.mark.parametrize(
    "expires_at", ["2020-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2030-01-01T00:00:00"]
)
async def test_bad_expiry_on_creation_creates_nothing(client, admin, database_url, expires_at):
    before = await _state(database_url)
    response = await client.post(
        CLIENTS,
        json={"name": "x", "roles": ["reviewer"], "tenant": "acme", "expires_at": expires_at},
        headers=admin,
    )
    assert response.status_code in {400, 422}
    assert_problem(response, response.status_code, response.json()["code"])
    assert await _state(database_url) == before


@pytest.mark.parametrize("client_id", ["nonsense", "cl_" + "0" * 200, "cl_%27%20OR%201=1"])
async def test_malformed_client_ids_are_404(client, admin, database_url, client_id):
    before = await _state(database_url)
    for response in (
        await client.get(f"{CLIENTS}/{client_id}", headers=admin),
        await client.post(f"{CLIENTS}/{client_id}/revoke", headers=admin),
        await client.post(f"{CLIENTS}/{client_id}/keys", headers=admin),
    ):
        assert_problem(response, 404, "client_not_found")
    assert await _state(database_url) == before


async def test_last_used_at_is_written_in_batches_at_most_once_a_minute(
    client, admin, make_client, database_url
):
    client_id, key = await make_client("reviewer")
    usage = client.app.state.services.key_usage

    async def flush():
        conn = await asyncpg.connect(database_url)
        try:
            await usage.flush(conn)
        finally:
            await conn.close()

    async def last_used():
        rows = await _fetch(
            database_url, "SELECT last_used_at FROM api_keys WHERE client_id = $1", client_id
        )
        return rows[0]["last_used_at"]

    assert await last_used() is None
    await _works(client, key)
    # Noted in memory on the request path, written by the background flush.
    assert await last_used() is None
    await flush()
    first = await last_used()
    assert first is not None

    await _works(client, key)
    await flush()
    assert await last_used() == first  # not again within the minute

    await _execute(
        database_url,
        "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE client_id = $1",
        client_id,
    )
    await _works(client, key)
    await flush()
    assert await last_used() > first
    shown = (await client.get(f"{CLIENTS}/{client_id}", headers=admin)).json()
    assert shown["keys"][0]["last_used_at"] is not None


async def test_migration_moves_existing_keys(pg_server_url, tmp_path):
    """A database of the previous release (0001-0008) with a client keeps working after 0009."""
    name = f"registry_m0009_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    old = tmp_path / "migrations"
    old.mkdir()
    for migration in sorted(db.MIGRATIONS_DIR.glob("000[1-8]_*.sql")):
        shutil.copy(migration, old)
    api_key, disabled_key = auth.generate_api_key(), auth.generate_api_key()
    conn = await asyncpg.connect(urlunsplit(urlsplit(pg_server_url)._replace(path=f"/{name}")))
    try:
        assert await db.migrate(conn, old) == [f"000{n}" for n in range(1, 9)]
        # Clients as the previous release wrote them: one key in api_clients.key_hash.
        await conn.execute(
            "INSERT INTO api_clients (client_id, name, tenant, roles, key_hash, disabled_at)"
            " VALUES ('cl_aaaaaaaaaaaaaaaa', 'old', 'acme', '{generator}', $1, NULL),"
            " ('cl_bbbbbbbbbbbbbbbb', 'gone', 'acme', '{generator}', $2, now())",
            auth.key_hash(api_key),
            auth.key_hash(disabled_key),
        )

        assert "0009" in await db.migrate(conn)

        found = await auth.authenticate_key(conn, f"Bearer {api_key}")
        assert found.client.client_id == "cl_aaaaaaaaaaaaaaaa"
        assert found.key_id.startswith("key_")
        with pytest.raises(auth.Unauthenticated, match="revoked"):
            await auth.authenticate(conn, f"Bearer {disabled_key}")
        assert await auth.key_exists(conn, api_key)
        keys = await conn.fetch("SELECT client_id, created_at, expires_at FROM api_keys")
        assert sorted(k["client_id"] for k in keys) == [
            "cl_aaaaaaaaaaaaaaaa",
            "cl_bbbbbbbbbbbbbbbb",
        ]
        assert all(k["expires_at"] is None for k in keys)
    finally:
        await conn.close()
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_the_usage_writer_flushes_in_the_background_and_when_stopped(
    make_client, database_url
):
    import asyncio
    import contextlib

    from registry import api_keys

    client_id, _ = await make_client("reviewer")
    [row] = await _fetch(
        database_url, "SELECT key_id FROM api_keys WHERE client_id = $1", client_id
    )

    @contextlib.asynccontextmanager
    async def connection():
        conn = await asyncpg.connect(database_url)
        try:
            yield conn
        finally:
            await conn.close()

    async def last_used():
        [r] = await _fetch(
            database_url, "SELECT last_used_at FROM api_keys WHERE key_id = $1", row["key_id"]
        )
        return r["last_used_at"]

    usage = api_keys.KeyUsage()
    writer = asyncio.create_task(api_keys.write_usage(usage, connection, interval=0.05))
    usage.note(row["key_id"], None)
    for _ in range(100):
        if await last_used() is not None:
            break
        await asyncio.sleep(0.05)
    assert await last_used() is not None
    assert usage.pending == 0

    # Stopping writes what was noted since the last flush.
    await _execute(
        database_url,
        "UPDATE api_keys SET last_used_at = NULL WHERE key_id = $1",
        row["key_id"],
    )
    writer.cancel()
    usage.note(row["key_id"], None)
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    assert await last_used() is not None


async def test_two_admins_revoking_each_other_at_once_leave_one(pool):
    """The second revocation waits for the first to commit, then sees it was the last admin."""
    import asyncio

    from registry import api_keys, operations
    from registry.core.uow import unit_of_work

    async with pool.acquire() as conn, unit_of_work(conn, actor="test", tenant=None) as uow:
        made = [
            await operations.create_client(uow, name=n, roles=["admin"], tenant="system")
            for n in ("one", "two")
        ]
    one, two = (m.client.client_id for m in made)
    first = await pool.acquire()
    second = await pool.acquire()
    try:
        async with unit_of_work(first, actor=one, tenant="system") as uow:
            await api_keys.revoke_client(uow, two, limits=LIMITS)
            rival = asyncio.create_task(_revoke_in_transaction(second, one, actor=two))
            await asyncio.sleep(0.3)
            assert not rival.done()  # waiting for the first revocation to commit or roll back
        with pytest.raises(api_keys.LastAdmin):
            await rival
    finally:
        await pool.release(first)
        await pool.release(second)
    async with pool.acquire() as conn:
        assert (await auth.authenticate(conn, f"Bearer {made[0].api_key}")).client_id == one


async def _revoke_in_transaction(conn, client_id, *, actor):
    from registry import api_keys
    from registry.core.uow import unit_of_work

    async with unit_of_work(conn, actor=actor, tenant="system") as uow:
        return await api_keys.revoke_client(uow, client_id, limits=LIMITS)
