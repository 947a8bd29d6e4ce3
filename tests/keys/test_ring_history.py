"""The ring's key history against a real PostgreSQL: rotation keeps every public key that
signed, with its signing period, while erasing private keys and emptying the JWKS of keys
whose tokens can no longer be live."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import asyncpg
import pytest

from keys import KeyPeriod, KeyRing, KeyRingSettings, MasterKey

TTL = timedelta(minutes=10)
INTERVAL = 3600.0


@pytest.fixture
def master():
    return MasterKey.generate()


def make_ring(pool, master, **settings) -> KeyRing:
    settings.setdefault("max_token_ttl", TTL)
    settings.setdefault("refresh_interval", INTERVAL)
    return KeyRing(pool=pool, master_key=master, settings=KeyRingSettings(**settings))


async def rotate(pool, ring):
    async with pool.acquire() as conn, conn.transaction():
        rotation = await ring.rotate(conn)
    await ring.refresh(force=True)
    return rotation


async def test_a_started_ring_has_its_active_key_in_the_history(pool, master):
    ring = make_ring(pool, master)
    await ring.start()
    (period,) = ring.history()
    assert isinstance(period, KeyPeriod)
    assert period.kid == ring.signer().kid
    assert period.not_after is None
    activated = await pool.fetchval(
        "SELECT activated_at FROM signing_keys WHERE kid = $1", period.kid
    )
    assert period.not_before == activated
    # The next key has not signed: it is in the JWKS, not in the history.
    assert len(ring.jwks()["keys"]) == 2


async def test_three_rotations_keep_every_key_with_its_period(pool, master):
    ring = make_ring(pool, master)
    await ring.start()
    first = ring.signer().kid
    rotations = [await rotate(pool, ring) for _ in range(3)]
    # Everything retiring is past its publication: it leaves the JWKS, not the history.
    await pool.execute(
        "UPDATE signing_keys SET retire_after = now() - interval '1 second'"
        " WHERE state = 'retiring'"
    )
    await ring.refresh(force=True)

    history = ring.history()
    signed = [first, *(r.activated_kid for r in rotations)]
    assert [p.kid for p in history] == signed
    assert {jwk["kid"] for jwk in ring.jwks()["keys"]} == {signed[-1], rotations[-1].next_kid}
    rows = {
        r["kid"]: r
        for r in await pool.fetch(
            "SELECT kid, state, activated_at, signs_until, private_key_enc, public_jwk::text"
            " FROM signing_keys"
        )
    }
    for older, newer in itertools.pairwise(history):
        row = rows[older.kid]
        assert row["state"] == "retired"
        assert row["private_key_enc"] is None
        assert row["public_jwk"]
        assert older.not_after == row["signs_until"]
        # It stopped when the next one started, plus two refresh intervals.
        assert older.not_after == newer.not_before + timedelta(seconds=2 * INTERVAL)
        assert older.jwk["kid"] == older.kid
        assert set(older.jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert history[-1].not_after is None


async def test_the_history_is_the_same_object_until_a_rotation(pool, master):
    ring = make_ring(pool, master)
    await ring.start()
    before = ring.history()
    await ring.refresh(force=True)
    assert ring.history() is before
    await rotate(pool, ring)
    assert ring.history() is not before
    assert len(ring.history()) == 2


async def test_another_process_learns_of_a_rotation_by_itself(pool, master):
    ring = make_ring(pool, master)
    await ring.start()
    other = make_ring(pool, master, refresh_interval=0.05)
    await other.start()
    task = asyncio.create_task(other.refresh_forever())
    try:
        rotation = await rotate(pool, ring)
        for _ in range(250):
            if other.signer().kid == rotation.activated_kid:
                break
            await asyncio.sleep(0.02)
        assert other.signer().kid == rotation.activated_kid
        assert [p.kid for p in other.history()] == [p.kid for p in ring.history()]
    finally:
        task.cancel()


async def test_a_database_refuses_a_retired_key_without_its_period(pool, master):
    ring = make_ring(pool, master)
    await ring.start()
    rotation = await rotate(pool, ring)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "UPDATE signing_keys SET signs_until = NULL WHERE kid = $1", rotation.retiring_kid
        )
