from __future__ import annotations

from typing import Any

import msgspec

import keys
from registry.core import audit


class Signer:
    """A real signer: our compact JWS over a freshly generated Ed25519 key."""

    def __init__(self) -> None:
        self.key = keys.LocalSigner.generate("EdDSA")

    def sign_jws(self, payload: Any, *, typ: str) -> str:
        return keys.sign_compact(msgspec.json.encode(payload), self.key, typ=typ)


async def _append(conn, n: int) -> None:
    for i in range(n):
        async with conn.transaction():
            await audit.append(
                conn,
                actor="test",
                tenant="t1",
                action="thing.done",
                subject_type="thing",
                subject_id=str(i),
                payload={"i": i},
            )


async def _bypass_triggers(conn):
    # What an attacker with superuser rights could do; the chain must still expose it.
    await conn.execute("SET session_replication_role = replica")


async def test_chain_verifies_and_checkpoint_signs(pool):
    signer = Signer()
    async with pool.acquire() as conn:
        await _append(conn, 5)
        async with conn.transaction():
            cp = await audit.make_checkpoint(conn, signer, issuer="http://test")
        assert cp is not None
        assert cp.tree_size == 5
        verified = keys.verify_compact(
            cp.checkpoint,
            resolve_key=lambda _h: signer.key.public_key(),
            typ=audit.CHECKPOINT_TYP,
        )
        claims = msgspec.json.decode(verified.payload)
        assert claims["tree_size"] == 5
        assert claims["head"] == cp.head_hash
        async with conn.transaction():
            assert await audit.make_checkpoint(conn, signer, issuer="http://test") is None
        report = await audit.verify_chain(conn)
    assert report.ok
    assert report.size == 5
    assert report.checkpoint_size == 5


async def test_append_outside_transaction_is_refused(pool):
    async with pool.acquire() as conn:
        try:
            await audit.append(
                conn, actor="a", tenant=None, action="x", subject_type="t", subject_id="1"
            )
        except RuntimeError:
            pass
        else:
            raise AssertionError("append outside a transaction must fail")
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == 0


async def test_edited_event_is_named(pool):
    async with pool.acquire() as conn:
        await _append(conn, 6)
        await _bypass_triggers(conn)
        await conn.execute("UPDATE audit_events SET payload = '{\"i\": 99}' WHERE seq = 4")
        report = await audit.verify_chain(conn)
    assert not report.ok
    assert report.first_bad_seq == 4


async def test_deleted_middle_event_is_named(pool):
    async with pool.acquire() as conn:
        await _append(conn, 6)
        await _bypass_triggers(conn)
        await conn.execute("DELETE FROM audit_events WHERE seq = 3")
        report = await audit.verify_chain(conn)
    assert not report.ok
    assert report.first_bad_seq == 3


async def test_deleted_tail_is_caught_by_checkpoint(pool):
    signer = Signer()
    async with pool.acquire() as conn:
        await _append(conn, 6)
        async with conn.transaction():
            await audit.make_checkpoint(conn, signer, issuer="http://test")
        await _bypass_triggers(conn)
        await conn.execute("DELETE FROM audit_events WHERE seq >= 5")
        report = await audit.verify_chain(conn)
    assert not report.ok
    assert report.first_bad_seq == 5
    assert "tail" in (report.problem or "")


async def test_rewritten_chain_differs_from_checkpoint(pool):
    """Recomputing every hash after an edit still disagrees with the signed checkpoint."""
    signer = Signer()
    async with pool.acquire() as conn:
        await _append(conn, 3)
        async with conn.transaction():
            await audit.make_checkpoint(conn, signer, issuer="http://test")
        await _bypass_triggers(conn)
        rows = await conn.fetch("SELECT * FROM audit_events ORDER BY seq")
        prev = audit.GENESIS
        for row in rows:
            payload = {"i": 42} if row["seq"] == 2 else row["payload"]
            entry = audit.Entry(
                seq=row["seq"],
                occurred_at=row["occurred_at"],
                actor=row["actor"],
                tenant=row["tenant"],
                action=row["action"],
                subject_type=row["subject_type"],
                subject_id=row["subject_id"],
                payload=payload,
            )
            digest = audit.chain_hash(prev, entry.canonical())
            await conn.execute(
                "UPDATE audit_events SET payload = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
                payload,
                prev,
                digest,
                row["seq"],
            )
            prev = digest
        report = await audit.verify_chain(conn)
    assert not report.ok
    assert report.first_bad_seq == 3


async def test_concurrent_appends_stay_linear(pool):
    import asyncio

    async def one(i: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await audit.append(
                conn, actor="a", tenant=None, action="x", subject_type="t", subject_id=str(i)
            )

    await asyncio.gather(*(one(i) for i in range(20)))
    async with pool.acquire() as conn:
        report = await audit.verify_chain(conn)
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM audit_events ORDER BY seq")]
    assert report.ok
    assert seqs == list(range(1, 21))
