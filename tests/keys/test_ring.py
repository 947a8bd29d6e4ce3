"""KeyRing against a real PostgreSQL: bootstrap, rotation, retirement, storage integrity."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import asyncpg
import jwt
import pytest

from keys import (
    KeyDecryptionFailed,
    KeyRing,
    KeyRingSettings,
    KeysError,
    LocalSigner,
    MasterKey,
    NoActiveKey,
    Rotation,
    RotationInProgress,
    sign_compact,
)

TTL = timedelta(minutes=10)
TYP = "test+jwt"
PUBLIC_MEMBERS = {"kty", "crv", "x", "y", "kid", "alg", "use"}


@pytest.fixture
def master():
    return MasterKey.generate()


def make_ring(pool, master, **settings):
    settings.setdefault("max_token_ttl", TTL)
    # Long interval: tests decide when the ring reloads.
    settings.setdefault("refresh_interval", 3600.0)
    return KeyRing(pool=pool, master_key=master, settings=KeyRingSettings(**settings))


@pytest.fixture
async def ring(pool, master):
    ring = make_ring(pool, master)
    await ring.start()
    return ring


async def states(pool) -> dict[str, list[str]]:
    rows = await pool.fetch("SELECT kid, state FROM signing_keys ORDER BY created_at, kid")
    result: dict[str, list[str]] = {}
    for row in rows:
        result.setdefault(row["state"], []).append(row["kid"])
    return result


async def rotate(pool, ring) -> Rotation:
    async with pool.acquire() as conn, conn.transaction():
        rotation = await ring.rotate(conn)
    await ring.refresh(force=True)
    return rotation


def kids(ring) -> list[str]:
    return [jwk["kid"] for jwk in ring.jwks()["keys"]]


async def test_start_creates_an_active_and_a_next_key(pool, master, ring):
    db = await states(pool)
    assert set(db) == {"active", "next"}
    assert ring.signer().kid == db["active"][0]
    assert kids(ring) == [db["active"][0], db["next"][0]]
    for jwk in ring.jwks()["keys"]:
        assert set(jwk) <= PUBLIC_MEMBERS
        assert (jwk["alg"], jwk["use"], jwk["kty"]) == ("EdDSA", "sig", "OKP")
    row = await pool.fetchrow("SELECT kid, private_key_enc FROM signing_keys WHERE state='active'")
    der = master.decrypt(row["private_key_enc"], aad=row["kid"].encode())
    assert LocalSigner.from_pkcs8_der(der, "EdDSA").kid == row["kid"]
    assert der not in row["private_key_enc"]


async def test_start_is_idempotent(pool, master, ring):
    before = await states(pool)
    again = make_ring(pool, master)
    await again.start()
    assert await states(pool) == before
    assert again.signer().kid == ring.signer().kid


async def test_concurrent_starts_create_one_active_and_one_next(pool, master):
    rings = [make_ring(pool, master) for _ in range(3)]
    await asyncio.gather(*(r.start() for r in rings))
    db = await states(pool)
    assert {state: len(k) for state, k in db.items()} == {"active": 1, "next": 1}
    assert {r.signer().kid for r in rings} == set(db["active"])


async def test_start_promotes_a_waiting_next_key(pool, master, ring):
    db = await states(pool)
    await pool.execute("DELETE FROM signing_keys WHERE state = 'active'")
    again = make_ring(pool, master)
    await again.start()
    assert again.signer().kid == db["next"][0]
    assert len((await states(pool))["next"]) == 1


async def test_rotation_publishes_before_signing(pool, master, ring):
    published_before = kids(ring)
    old_active = ring.signer().kid
    other_process = make_ring(pool, master)
    await other_process.start()

    rotation = await rotate(pool, ring)

    assert rotation.retiring_kid == old_active
    assert ring.signer().kid == rotation.activated_kid
    assert rotation.activated_kid in published_before
    assert rotation.next_kid not in published_before
    assert kids(ring) == [rotation.activated_kid, rotation.next_kid, old_active]
    # A process that has not reloaded since the rotation already verifies the new key's tokens.
    token = ring.sign_jws({"n": 1}, typ=TYP)
    assert json.loads(other_process.verify_jws(token, typ=TYP).payload) == {"n": 1}

    row = await pool.fetchrow(
        "SELECT private_key_enc, retire_after, retire_after - now() AS remaining "
        "FROM signing_keys WHERE kid = $1",
        old_active,
    )
    assert row["private_key_enc"] is None
    assert row["retire_after"] == rotation.retire_after
    assert TTL < row["remaining"] <= TTL + timedelta(seconds=2 * 3600.0)
    assert await states(pool) == {
        "active": [rotation.activated_kid],
        "next": [rotation.next_kid],
        "retiring": [old_active],
    }


async def test_retiring_key_verifies_until_retire_after(pool, master, ring):
    old_token = ring.sign_jws(b"signed before rotation", typ=TYP)
    rotation = await rotate(pool, ring)
    assert ring.verify_jws(old_token, typ=TYP).payload == b"signed before rotation"
    assert ring.public_key(rotation.retiring_kid) is not None

    await pool.execute(
        "UPDATE signing_keys SET retire_after = now() - interval '1 second' WHERE kid = $1",
        rotation.retiring_kid,
    )
    await ring.refresh()  # not stale yet: still published
    assert rotation.retiring_kid in kids(ring)
    await ring.refresh(force=True)

    assert rotation.retiring_kid not in kids(ring)
    assert ring.public_key(rotation.retiring_kid) is None
    with pytest.raises(KeysError) as info:
        ring.verify_jws(old_token, typ=TYP)
    assert info.value.code == "unknown_key"
    row = await pool.fetchrow(
        "SELECT state, retired_at FROM signing_keys WHERE kid = $1", rotation.retiring_kid
    )
    assert row["state"] == "retired"
    assert row["retired_at"] is not None


async def test_tiny_ttl_retires_after_refresh_interval(pool, master):
    ring = make_ring(pool, master, max_token_ttl=timedelta(milliseconds=1), refresh_interval=0.01)
    await ring.start()
    rotation = await rotate(pool, ring)
    assert rotation.retiring_kid in kids(ring)
    await asyncio.sleep(0.1)
    await ring.refresh()
    assert rotation.retiring_kid not in kids(ring)
    assert (await states(pool))["retired"] == [rotation.retiring_kid]


async def test_two_rotations_at_once_one_wins(pool, master, ring):
    conns = [await pool.acquire() for _ in range(2)]
    try:
        transactions = [conn.transaction() for conn in conns]
        for tx in transactions:
            await tx.start()
        results = await asyncio.gather(
            *(ring.rotate(conn) for conn in conns), return_exceptions=True
        )
        for tx, result in zip(transactions, results, strict=True):
            await (tx.rollback() if isinstance(result, BaseException) else tx.commit())
    finally:
        for conn in conns:
            await pool.release(conn)
    assert sorted(type(r).__name__ for r in results) == ["Rotation", "RotationInProgress"]
    failure = next(r for r in results if isinstance(r, RotationInProgress))
    assert failure.code == "rotation_in_progress"
    db = await states(pool)
    assert {state: len(k) for state, k in db.items()} == {"active": 1, "next": 1, "retiring": 1}


async def test_successive_rotations_keep_every_live_key_published(pool, master, ring):
    first = await rotate(pool, ring)
    second = await rotate(pool, ring)
    assert second.activated_kid == first.next_kid
    assert kids(ring) == [
        second.activated_kid,
        second.next_kid,
        second.retiring_kid,
        first.retiring_kid,
    ]


async def test_rotate_needs_a_transaction_and_a_started_ring(pool, master, ring):
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="transaction"):
            await ring.rotate(conn)
        await conn.execute("DELETE FROM signing_keys")
        with pytest.raises(NoActiveKey) as info:
            async with conn.transaction():
                await ring.rotate(conn)
    assert info.value.code == "no_active_key"


async def test_unloaded_ring_refuses_to_sign(pool, master):
    ring = make_ring(pool, master)
    assert repr(ring) == "KeyRing(not loaded)"
    with pytest.raises(NoActiveKey):
        ring.signer()
    with pytest.raises(NoActiveKey):
        ring.jwks()
    assert ring.public_key("anything") is None
    await pool.execute("SELECT 1")
    with pytest.raises(NoActiveKey):
        await ring.refresh(force=True)


async def test_wrong_master_key_fails_at_start_without_key_bytes(pool, master, ring):
    wrong = MasterKey.generate()
    other = make_ring(pool, wrong)
    with pytest.raises(KeyDecryptionFailed) as info:
        await other.start()
    assert info.value.code == "key_decryption_failed"
    message = str(info.value) + repr(info.value)
    for secret in (master.to_text(), wrong.to_text(), *(await _private_texts(pool, master))):
        assert secret not in message


async def test_ciphertext_swapped_between_rows_fails(pool, master, ring):
    await pool.execute(
        """
        UPDATE signing_keys a SET private_key_enc = b.private_key_enc
        FROM signing_keys b WHERE a.state = 'active' AND b.state = 'next'
        """
    )
    with pytest.raises(KeyDecryptionFailed, match="does not decrypt"):
        await make_ring(pool, master).start()


async def test_public_key_swapped_between_rows_fails(pool, master, ring):
    await pool.execute(
        """
        UPDATE signing_keys a SET public_jwk = b.public_jwk
        FROM signing_keys b WHERE a.state = 'active' AND b.state = 'next'
        """
    )
    with pytest.raises(KeyDecryptionFailed, match="does not match its kid"):
        await make_ring(pool, master).start()


async def test_no_key_material_in_repr(pool, master, ring):
    secrets = [
        master.to_text(),
        master.to_text().replace("-", "+"),
        *await _private_texts(pool, master),
    ]
    texts = [repr(ring), str(ring), repr(ring.signer()), str(ring.signer()), repr(master)]
    texts.append(json.dumps(ring.jwks()))
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert ring.signer().kid in repr(ring)


async def test_invalid_kids_are_refused_before_lookup(ring):
    for kid in ("../../x", "k" * 10_000, "", "a b"):
        assert ring.public_key(kid) is None
        assert await ring.public_key_fresh(kid) is None


async def test_public_key_fresh_reloads_at_most_once_per_second(pool, master, ring):
    other_process = make_ring(pool, master)
    await other_process.start()
    rotation = await rotate(pool, ring)
    assert other_process.public_key(rotation.next_kid) is None
    assert await other_process.public_key_fresh(rotation.next_kid) is not None

    loaded_at = other_process._loaded_at
    assert await other_process.public_key_fresh("bogus-kid") is None
    assert other_process._loaded_at == loaded_at  # the reload above was under a second ago


async def test_sign_and_verify_round_trip(ring):
    token = ring.sign_jws({"b": 2, "a": [1]}, typ=TYP, extra_headers={"x": "y"})
    verified = ring.verify_jws(token, typ=TYP)
    assert verified.payload == b'{"b":2,"a":[1]}'
    assert verified.header["kid"] == ring.signer().kid
    assert verified.header["x"] == "y"


async def test_verify_rejects_foreign_signatures(ring):
    stranger = LocalSigner.generate("EdDSA")
    with pytest.raises(KeysError) as info:
        ring.verify_jws(sign_compact(b"x", stranger, typ=TYP), typ=TYP)
    assert info.value.code == "unknown_key"

    class Impostor:
        kid = ring.signer().kid
        alg = "EdDSA"

        def sign(self, data):
            return stranger.sign(data)

    with pytest.raises(KeysError) as info:
        ring.verify_jws(sign_compact(b"x", Impostor(), typ=TYP), typ=TYP)  # type: ignore[arg-type]
    assert info.value.code == "signature_invalid"


async def test_verify_pins_the_rings_algorithms(ring):
    es = LocalSigner.generate("ES256")
    with pytest.raises(KeysError) as info:
        ring.verify_jws(sign_compact(b"x", es, typ=TYP), typ=TYP)
    assert info.value.code == "algorithm_not_allowed"


async def test_es256_ring_tokens_verify_with_pyjwt_and_the_jwks(pool, master):
    ring = make_ring(pool, master, alg="ES256")
    await ring.start()
    token = ring.sign_jws({"sub": "s"}, typ=TYP)
    jwk = next(k for k in ring.jwks()["keys"] if k["kid"] == ring.signer().kid)
    assert jwk["kty"] == "EC"
    key = jwt.PyJWK(jwk).key
    assert jwt.decode(token, key=key, algorithms=["ES256"]) == {"sub": "s"}


def test_settings_are_validated():
    with pytest.raises(ValueError, match="max_token_ttl"):
        KeyRingSettings(max_token_ttl=timedelta(0))
    with pytest.raises(ValueError, match="refresh_interval"):
        KeyRingSettings(max_token_ttl=TTL, refresh_interval=0)


async def _private_texts(pool, master) -> list[str]:
    """Every stored private key, decrypted, in the encodings a leak would take."""
    texts = []
    for row in await pool.fetch(
        "SELECT kid, private_key_enc FROM signing_keys WHERE private_key_enc IS NOT NULL"
    ):
        try:
            der = master.decrypt(row["private_key_enc"], aad=row["kid"].encode())
        except KeyDecryptionFailed:
            continue
        raw = der[-32:]
        texts += [der.hex(), raw.hex(), base64.b64encode(der).decode()]
        texts += [base64.urlsafe_b64encode(raw).rstrip(b"=").decode()]
    assert texts
    return texts


async def test_database_forbids_two_active_keys(pool, ring):
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute("UPDATE signing_keys SET state = 'active', activated_at = now()")
