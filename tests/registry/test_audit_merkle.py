"""The audit log as a Merkle tree (issue 13), on a real database and through the service.

Roots, stored blocks and proofs from ``registry.core.audit_tree`` against the brute-force
tree of ``tests.verifier.test_merkle`` over the events' stored hashes; the public proof
endpoints, their refusals (4xx problems, nothing written), the checkpoint signed at start
as a C2SP note, and the proofs checked offline with ``verifier.merkle`` and with
``python -m verifier audit``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
from litestar.testing import AsyncTestClient

import keys
from registry.app import create_app
from registry.core import audit, audit_tree
from tests.support import assert_problem, make_settings
from tests.verifier.test_merkle import bf_mth, bf_path, bf_proof
from verifier import merkle, note
from verifier.cli import main

if TYPE_CHECKING:
    import asyncpg

REPO = Path(__file__).resolve().parents[2]


class _JwsSigner:
    def __init__(self, key: keys.LocalSigner) -> None:
        self.key = key

    def sign_jws(self, payload, *, typ: str) -> str:
        return keys.sign_compact(msgspec.json.encode(payload), self.key, typ=typ)


async def _append(conn: asyncpg.Connection, n: int, *, first: int = 0) -> None:
    async with conn.transaction():
        for i in range(first, first + n):
            await audit.append(
                conn,
                actor="test",
                tenant="t1",
                action="thing.done",
                subject_type="thing",
                subject_id=str(i),
                payload={"i": i},
            )


async def _event_hashes(conn: asyncpg.Connection) -> list[bytes]:
    return [
        bytes(r["hash"]) for r in await conn.fetch("SELECT hash FROM audit_events ORDER BY seq")
    ]


async def _blocks(conn: asyncpg.Connection) -> dict[tuple[int, int], bytes]:
    return await audit_tree.stored_blocks(conn)


async def test_roots_and_stored_blocks_match_the_brute_force(pool):
    async with pool.acquire() as conn:
        await _append(conn, 1100)
        leaves = await _event_hashes(conn)
        assert await audit_tree.root(conn, 300) == bf_mth(leaves[:300])
        # Only what that root needed: the one complete block of 256.
        assert set(await _blocks(conn)) == {(8, 0)}
        for size in (1, 2, 255, 256, 257, 511, 512, 513, 767, 1024, 1025, 1100):
            assert await audit_tree.root(conn, size) == bf_mth(leaves[:size]), size
        stored = await _blocks(conn)
        assert set(stored) == {(8, 0), (8, 1), (8, 2), (8, 3), (9, 0), (9, 1), (10, 0)}
        for (level, idx), value in stored.items():
            assert value == bf_mth(leaves[idx << level : (idx + 1) << level])
        assert await audit_tree.root(conn, 0) == merkle.EMPTY_ROOT


async def test_proofs_match_the_brute_force(pool):
    async with pool.acquire() as conn:
        await _append(conn, 600)
        leaves = await _event_hashes(conn)
        for size in (1, 7, 256, 257, 600):
            for index in sorted({0, 1, 255, 256, size // 2, size - 1} & set(range(size))):
                proof = await audit_tree.inclusion_proof(conn, index, size)
                assert proof.seq == index + 1
                assert bytes.fromhex(proof.event_hash) == leaves[index]
                assert proof.leaf_hash == merkle.leaf_hash(leaves[index]).hex()
                assert [bytes.fromhex(h) for h in proof.audit_path] == bf_path(index, leaves[:size])
                assert proof.root == bf_mth(leaves[:size]).hex()
            for first in sorted({1, 2, 255, 256, 257, size - 1, size} & set(range(1, size + 1))):
                consistency = await audit_tree.consistency_proof(conn, first, size)
                assert [bytes.fromhex(h) for h in consistency.path] == bf_proof(
                    first, leaves[:size]
                )
                assert consistency.root_from == bf_mth(leaves[:first]).hex()
                assert consistency.root_to == bf_mth(leaves[:size]).hex()


async def test_missing_events_are_reported_not_proved(pool):
    async with pool.acquire() as conn:
        await _append(conn, 10)
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM audit_events WHERE seq = 4")
        with pytest.raises(audit_tree.AuditLogBroken):
            await audit_tree.inclusion_proof(conn, 1, 10)


async def test_verify_chain_recomputes_blocks_and_signed_roots(pool):
    key = keys.LocalSigner.generate("EdDSA")
    async with pool.acquire() as conn:
        await _append(conn, 300)
        async with conn.transaction():
            made = await audit.make_checkpoint(
                conn, _JwsSigner(key), issuer="https://r.example", note_signer=key
            )
        assert made is not None
        assert made.root_hash == bf_mth(await _event_hashes(conn)).hex()
        claims = msgspec.json.decode(
            keys.verify_compact(
                made.checkpoint, resolve_key=lambda _: key.public_key(), typ=audit.CHECKPOINT_TYP
            ).payload
        )
        assert claims["root"] == made.root_hash
        assert made.origin == "r.example/audit"
        assert made.note is not None
        assert made.note_key is not None
        opened = note.open_checkpoint(made.note, [note.parse_verifier_key(made.note_key)])
        assert (opened.origin, opened.tree_size) == ("r.example/audit", 300)
        assert opened.root_hash.hex() == made.root_hash
        assert (await audit.verify_chain(conn)).ok

        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE audit_merkle_blocks SET hash = $1 WHERE level = 8 AND idx = 0", bytes(32)
        )
        report = await audit.verify_chain(conn)
        assert not report.ok
        assert report.first_bad_seq == 1
        assert "Merkle subtree of events 1 to 256" in (report.problem or "")

        await conn.execute(
            "UPDATE audit_merkle_blocks SET hash = $1 WHERE level = 8 AND idx = 0",
            bf_mth((await _event_hashes(conn))[:256]),
        )
        await conn.execute("UPDATE audit_checkpoints SET root_hash = $1", bytes(32))
        report = await audit.verify_chain(conn)
        assert not report.ok
        assert report.first_bad_seq == 300
        assert "Merkle root up to event 300" in (report.problem or "")

        await conn.execute(
            "UPDATE audit_checkpoints SET root_hash = $1", bytes.fromhex(made.root_hash)
        )
        await conn.execute(
            "INSERT INTO audit_merkle_blocks (level, idx, hash) VALUES (8, 5, $1)", bytes(32)
        )
        report = await audit.verify_chain(conn)
        assert not report.ok
        assert "past the log's end" in (report.problem or "")


# --- Through the service. ------------------------------------------------------------------


async def _jwks_file(client, tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text((await client.get("/.well-known/jwks.json")).text)
    return path


def _published_note_keys(jwks: dict, origin: str) -> list[note.NoteKey]:
    return [k for jwk in jwks["keys"] for k in note.keys_from_jwk(jwk, origin)]


async def test_a_fresh_service_has_a_signed_note_checkpoint(client):
    listed = await client.get("/v1/audit/checkpoint")
    assert listed.status_code == 200
    body = listed.json()
    # The bootstrap admin's creation is event 1; the start signed it.
    assert body["tree_size"] == 1
    assert body["origin"] == "127.0.0.1:8000/audit"
    served = await client.get("/v1/audit/checkpoint.note")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain")
    assert served.text == body["note"]
    jwks = (await client.get("/.well-known/jwks.json")).json()
    published = _published_note_keys(jwks, body["origin"])
    checkpoint = note.open_checkpoint(served.text, published, origin=body["origin"])
    assert checkpoint.tree_size == 1
    assert checkpoint.root_hash.hex() == body["root_hash"]
    assert body["note_key"] in {k.verifier_key() for k in published}


async def test_an_es256_service_signs_notes_with_ecdsa(service_database_url, tmp_path):
    settings = make_settings(service_database_url, tmp_path, signing_alg="ES256")
    async with AsyncTestClient(app=create_app(settings)) as client:
        body = (await client.get("/v1/audit/checkpoint")).json()
        jwks = (await client.get("/.well-known/jwks.json")).json()
    key = note.parse_verifier_key(body["note_key"])
    assert body["note_key"].split("+", 2)[2].startswith("Aj")  # base64 of 0x02 || SPKI
    assert key in _published_note_keys(jwks, body["origin"])
    assert note.open_checkpoint(body["note"], [key]).tree_size == 1


class World(msgspec.Struct):
    """Two checkpoints of a service's log (at start, and after 600 more events), its proofs
    between them, and the files a monitor keeps."""

    leaves: list[bytes]
    body: dict
    old: note.Checkpoint
    new: note.Checkpoint
    inclusion: dict
    consistency: dict
    files: dict[str, Path]


@pytest.fixture
async def world(client, pool, admin, tmp_path) -> World:
    old_note = (await client.get("/v1/audit/checkpoint.note")).text
    async with pool.acquire() as conn:
        await _append(conn, 600)
        leaves = await _event_hashes(conn)
    assert (await client.post("/v1/audit/checkpoint", headers=admin)).status_code == 201
    body = (await client.get("/v1/audit/checkpoint")).json()
    assert body["tree_size"] == len(leaves) == 601
    jwks_path = await _jwks_file(client, tmp_path)
    published = _published_note_keys(json.loads(jwks_path.read_text()), body["origin"])
    inclusion = await client.get("/v1/audit/proofs/inclusion?index=300&tree_size=601")
    assert inclusion.status_code == 200, inclusion.text
    consistency = await client.get("/v1/audit/proofs/consistency?from=1&to=601")
    assert consistency.status_code == 200, consistency.text
    texts = {
        "old": old_note,
        "new": body["note"],
        "inclusion": inclusion.text,
        "consistency": consistency.text,
        "vkey": body["note_key"] + "\n",
    }
    files = {"jwks": jwks_path}
    for name, text in texts.items():
        files[name] = tmp_path / name
        files[name].write_text(text)
    return World(
        leaves=leaves,
        body=body,
        old=note.open_checkpoint(old_note, published),
        new=note.open_checkpoint(body["note"], published),
        inclusion=inclusion.json(),
        consistency=consistency.json(),
        files=files,
    )


async def test_service_proofs_verify_offline(world):
    proof = world.inclusion
    assert set(proof) == {
        "leaf_index",
        "tree_size",
        "seq",
        "event_hash",
        "leaf_hash",
        "audit_path",
        "root",
    }
    assert proof["event_hash"] == world.leaves[300].hex()
    merkle.verify_inclusion(
        300,
        601,
        merkle.leaf_hash(world.leaves[300]),
        [bytes.fromhex(h) for h in proof["audit_path"]],
        world.new.root_hash,
    )
    path = world.consistency
    assert set(path) == {"from", "to", "path", "root_from", "root_to"}
    assert (path["from"], path["to"]) == (1, 601)
    merkle.verify_consistency(
        1,
        601,
        world.old.root_hash,
        world.new.root_hash,
        [bytes.fromhex(h) for h in path["path"]],
    )


def _cli(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    status = main(["audit", *args, "--json"], stdout=out)
    return status, json.loads(out.getvalue())


def _inclusion_args(world: World, *, checkpoint: str = "new", proof: str = "inclusion"):
    return [
        "inclusion",
        "--checkpoint",
        str(world.files[checkpoint]),
        "--proof",
        str(world.files[proof]),
        "--leaf",
        world.leaves[300].hex(),
    ]


def _consistency_args(world: World, old: str = "old", new: str = "new") -> list[str]:
    return [
        "consistency",
        "--old",
        str(world.files[old]),
        "--new",
        str(world.files[new]),
        "--proof",
        str(world.files["consistency"]),
    ]


async def test_the_cli_verifies_service_proofs(world):
    jwks = ["--jwks", str(world.files["jwks"])]
    status, outcome = _cli(*_inclusion_args(world), *jwks, "--index", "300")
    assert (status, outcome["result"], outcome["leaf_index"]) == (0, "verified", 300)
    assert outcome["checkpoint"] == {
        "origin": "127.0.0.1:8000/audit",
        "tree_size": 601,
        "root_hash": world.new.root_hash.hex(),
    }
    status, outcome = _cli(*_inclusion_args(world), "--key", str(world.files["vkey"]))
    assert (status, outcome["result"]) == (0, "verified")
    status, outcome = _cli(*_consistency_args(world), *jwks)
    assert (status, outcome["result"]) == (0, "verified")
    assert outcome["old_checkpoint"]["tree_size"] == 1


async def test_the_cli_refuses_what_does_not_verify(world, tmp_path):
    jwks = ["--jwks", str(world.files["jwks"])]
    args = _inclusion_args(world)
    wrong_leaf = [*args[:-1], world.leaves[301].hex()]
    status, outcome = _cli(*wrong_leaf, *jwks)
    assert (status, outcome["result"], outcome["reasons"]) == (1, "invalid", ["leaf"])
    assert _cli(*args, *jwks, "--index", "7")[1]["reasons"] == ["leaf_index"]
    assert _cli(*_inclusion_args(world, checkpoint="old"), *jwks)[1]["reasons"] == ["tree_size"]
    assert _cli(*args, *jwks, "--origin", "x/audit")[1]["reasons"] == ["origin"]
    tampered = dict(world.inclusion)
    tampered["audit_path"] = ["00" * 32, *world.inclusion["audit_path"][1:]]
    world.files["tampered"] = tmp_path / "tampered.json"
    world.files["tampered"].write_text(json.dumps(tampered))
    status, outcome = _cli(*_inclusion_args(world, proof="tampered"), *jwks)
    assert (status, outcome["reasons"]) == (1, ["inclusion"])
    other = note.note_key(world.body["origin"], keys.LocalSigner.generate("EdDSA").public_key())
    status, outcome = _cli(*args, "--key", other.verifier_key())
    assert (status, outcome["reasons"]) == (1, ["note_invalid"])
    # The newer checkpoint given as the older one: not a consistency from 601 to 1.
    status, outcome = _cli(*_consistency_args(world, old="new", new="old"), *jwks)
    assert (status, outcome["reasons"]) == (1, ["tree_size"])


async def test_cli_usage_errors_exit_64(world, capsys):
    args = _inclusion_args(world)
    with pytest.raises(SystemExit) as missing:
        main(["audit", "inclusion", "--checkpoint", "x"])
    assert missing.value.code == 64
    assert main(["audit", *args[:-1], "not-a-hash", "--jwks", str(world.files["jwks"])]) == 64
    assert main(["audit", *args]) == 64  # no key given
    assert main(["audit", *args, "--key", str(world.files["inclusion"])]) == 64  # not a vkey
    assert "error:" in capsys.readouterr().err


async def test_the_cli_in_its_own_process(world):
    vkey = world.files["vkey"].read_text().strip()
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "verifier", "audit", *_consistency_args(world), "--key", vkey],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("verified\n")


BAD_REQUESTS = [
    ("/v1/audit/proofs/inclusion?index=301&tree_size=301", 422, "leaf_index_out_of_range"),
    ("/v1/audit/proofs/inclusion?index=400&tree_size=301", 422, "leaf_index_out_of_range"),
    ("/v1/audit/proofs/inclusion?index=0&tree_size=302", 422, "tree_size_beyond_log"),
    ("/v1/audit/proofs/inclusion?index=-1&tree_size=10", 400, "invalid_parameter"),
    ("/v1/audit/proofs/inclusion?index=1.5&tree_size=10", 400, "invalid_parameter"),
    ("/v1/audit/proofs/inclusion?index=abc&tree_size=10", 400, "invalid_parameter"),
    ("/v1/audit/proofs/inclusion?index=0&tree_size=0", 400, "invalid_parameter"),
    ("/v1/audit/proofs/inclusion?index=0&tree_size=-5", 400, "invalid_parameter"),
    ("/v1/audit/proofs/inclusion?index=0&tree_size=99999999999999999999", 400, "invalid_parameter"),
    ("/v1/audit/proofs/inclusion?tree_size=10", 400, "invalid_parameter"),
    ("/v1/audit/proofs/consistency?from=3&to=2", 422, "consistency_range_invalid"),
    ("/v1/audit/proofs/consistency?from=0&to=2", 400, "invalid_parameter"),
    ("/v1/audit/proofs/consistency?from=-1&to=2", 400, "invalid_parameter"),
    ("/v1/audit/proofs/consistency?from=1&to=302", 422, "tree_size_beyond_log"),
    ("/v1/audit/proofs/consistency?from=x&to=2", 400, "invalid_parameter"),
    ("/v1/audit/proofs/consistency?to=2", 400, "invalid_parameter"),
]


async def _state(conn: asyncpg.Connection) -> tuple:
    return (
        await conn.fetchval("SELECT count(*) FROM audit_events"),
        await conn.fetchval("SELECT count(*) FROM audit_merkle_blocks"),
        await conn.fetchval("SELECT count(*) FROM audit_checkpoints"),
        tuple(await conn.fetchrow("SELECT seq, hash FROM audit_head")),
    )


async def test_bad_proof_requests_are_4xx_problems_and_change_nothing(client, pool):
    async with pool.acquire() as conn:
        await _append(conn, 300)  # 301 events with the bootstrap admin's; no block stored yet
        before = await _state(conn)
    assert before[:3] == (301, 0, 1)
    for url, status, code in BAD_REQUESTS:
        assert_problem(await client.get(url), status, code)
    async with pool.acquire() as conn:
        assert await _state(conn) == before
    # The edges that are fine.
    assert (
        await client.get("/v1/audit/proofs/inclusion?index=300&tree_size=301")
    ).status_code == 200
    empty = (await client.get("/v1/audit/proofs/consistency?from=301&to=301")).json()
    assert empty["path"] == []
    assert empty["root_from"] == empty["root_to"]


async def test_checkpoints_across_key_rotations_verify_with_the_key_history(
    client, pool, admin, tmp_path
):
    """A monitor's old checkpoint, signed by a key rotated away since, still checks against a
    newer one with the published key history (``--keys``)."""
    notes = [(await client.get("/v1/audit/checkpoint.note")).text]
    for round_ in range(3):
        assert (await client.post("/v1/admin/keys/rotate", headers=admin)).status_code == 200
        async with pool.acquire() as conn:
            await _append(conn, 5, first=10 * round_)
        assert (await client.post("/v1/audit/checkpoint", headers=admin)).status_code == 201
        notes.append((await client.get("/v1/audit/checkpoint.note")).text)
    key_ids = {base64.b64decode(n.splitlines()[-1].split(" ")[2])[:4] for n in notes}
    assert len(key_ids) == 4  # four keys signed the four checkpoints
    history = tmp_path / "history.jwt"
    history.write_text((await client.get("/.well-known/registry-keys.json")).text)
    (tmp_path / "old.note").write_text(notes[0])
    (tmp_path / "new.note").write_text(notes[-1])
    old_size = note.parse_checkpoint(note.note_text(notes[0])).tree_size
    new_size = note.parse_checkpoint(note.note_text(notes[-1])).tree_size
    proof = await client.get(f"/v1/audit/proofs/consistency?from={old_size}&to={new_size}")
    (tmp_path / "proof.json").write_text(proof.text)
    args = [
        "consistency",
        "--old",
        str(tmp_path / "old.note"),
        "--new",
        str(tmp_path / "new.note"),
        "--proof",
        str(tmp_path / "proof.json"),
    ]
    status, outcome = _cli(*args, "--keys", str(history))
    assert (status, outcome["result"]) == (0, "verified"), outcome
