"""The tamper-evident audit log: a hash chain of events plus signed checkpoints.

Each event's hash is SHA-256(previous hash || canonical JSON of the event), so changing or
removing any event breaks every hash after it. Checkpoints sign (tree size, head hash, time)
with the registry's token key, so an outside party holding one can detect a rewritten or
truncated log even if an attacker recomputes the chain.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

if TYPE_CHECKING:
    from collections.abc import Mapping

    import asyncpg

GENESIS = bytes(32)
_HEAD = "SELECT seq, hash FROM audit_head"
_HEAD_FOR_UPDATE = "SELECT seq, hash FROM audit_head FOR UPDATE"
CHECKPOINT_TYP = "audit-checkpoint+jwt"


class JwsSigner(Protocol):
    def sign_jws(self, payload: Mapping[str, Any], *, typ: str) -> str: ...


class Entry(msgspec.Struct, kw_only=True, frozen=True):
    """The hashed part of an event."""

    seq: int
    occurred_at: datetime
    actor: str
    tenant: str | None
    action: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any]

    def canonical(self) -> bytes:
        body = msgspec.structs.asdict(self)
        body["occurred_at"] = self.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
        return msgspec.json.encode(body, order="sorted")


class AuditEvent(Entry, kw_only=True, frozen=True):
    prev_hash: str
    hash: str


class AuditRecord(msgspec.Struct, kw_only=True, frozen=True):
    """An event a domain operation returns for its unit of work to record (ids and hashes only).

    The unit of work (``registry.core.uow``) appends it in the operation's transaction, as the
    acting client.
    """

    action: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any]


class Checkpoint(msgspec.Struct, kw_only=True, frozen=True):
    tree_size: int
    head_hash: str
    created_at: datetime
    checkpoint: str
    """Compact JWS over {iss, tree_size, head, iat}, verifiable with the JWKS."""


class ChainReport(msgspec.Struct, kw_only=True, frozen=True):
    ok: bool
    size: int
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoint_size: int | None = None


def chain_hash(prev: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(prev + canonical).digest()


async def append(
    conn: asyncpg.Connection,
    *,
    actor: str,
    tenant: str | None,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the transaction that makes the change it records.

    Only the unit of work (``registry.core.uow``) calls this. Locking the head row serialises
    appenders until their transactions end, which keeps the sequence gapless and the chain
    linear; the unit of work appends last in its transaction to hold the lock briefly.
    """
    if not conn.is_in_transaction():
        msg = "audit.append must run inside the transaction that makes the change"
        raise RuntimeError(msg)
    head_seq, prev = await _head(conn, lock=True)
    entry = Entry(
        seq=head_seq + 1,
        # Microsecond precision: what PostgreSQL stores, so verification recomputes the hash.
        occurred_at=datetime.now(UTC),
        actor=actor,
        tenant=tenant,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=dict(payload or {}),
    )
    digest = chain_hash(prev, entry.canonical())
    await conn.execute(
        "INSERT INTO audit_events (seq, occurred_at, actor, tenant, action, subject_type,"
        " subject_id, payload, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
        entry.seq,
        entry.occurred_at,
        entry.actor,
        entry.tenant,
        entry.action,
        entry.subject_type,
        entry.subject_id,
        entry.payload,
        prev,
        digest,
    )
    await conn.execute("UPDATE audit_head SET seq = $1, hash = $2", entry.seq, digest)
    return AuditEvent(**msgspec.structs.asdict(entry), prev_hash=prev.hex(), hash=digest.hex())


async def _head(conn: asyncpg.Connection, *, lock: bool = False) -> tuple[int, bytes]:
    row = await conn.fetchrow(_HEAD_FOR_UPDATE if lock else _HEAD)
    if row is None:
        msg = "audit_head is missing: the database was not migrated by this service"
        raise RuntimeError(msg)
    return int(row["seq"]), bytes(row["hash"])


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        seq=row["seq"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        tenant=row["tenant"],
        action=row["action"],
        subject_type=row["subject_type"],
        subject_id=row["subject_id"],
        payload=row["payload"],
    )


def _event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(
        **msgspec.structs.asdict(_entry(row)),
        prev_hash=bytes(row["prev_hash"]).hex(),
        hash=bytes(row["hash"]).hex(),
    )


async def list_events(
    conn: asyncpg.Connection,
    *,
    after: int = 0,
    limit: int = 100,
    subject_type: str | None = None,
    subject_id: str | None = None,
) -> list[AuditEvent]:
    rows = await conn.fetch(
        "SELECT * FROM audit_events WHERE seq > $1"
        " AND ($2::text IS NULL OR subject_type = $2)"
        " AND ($3::text IS NULL OR subject_id = $3)"
        " ORDER BY seq LIMIT $4",
        after,
        subject_type,
        subject_id,
        limit,
    )
    return [_event(r) for r in rows]


async def make_checkpoint(
    conn: asyncpg.Connection, signer: JwsSigner, *, issuer: str
) -> Checkpoint | None:
    """Sign the current head unless the latest checkpoint already covers it."""
    head_seq, head_hash = await _head(conn)
    latest = await conn.fetchval("SELECT max(tree_size) FROM audit_checkpoints")
    if head_seq == 0 or (latest is not None and latest >= head_seq):
        return None
    now = datetime.now(UTC)
    head_hex = head_hash.hex()
    jws = signer.sign_jws(
        {
            "iss": issuer,
            "tree_size": head_seq,
            "head": head_hex,
            "iat": int(now.timestamp()),
        },
        typ=CHECKPOINT_TYP,
    )
    inserted = await conn.fetchval(
        "INSERT INTO audit_checkpoints (tree_size, head_hash, created_at, jws)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING RETURNING tree_size",
        head_seq,
        head_hash,
        now,
        jws,
    )
    if inserted is None:  # another process signed the same head a moment ago
        return None
    return Checkpoint(tree_size=head_seq, head_hash=head_hex, created_at=now, checkpoint=jws)


async def latest_checkpoint(conn: asyncpg.Connection) -> Checkpoint | None:
    row = await conn.fetchrow(
        "SELECT tree_size, head_hash, created_at, jws FROM audit_checkpoints"
        " ORDER BY tree_size DESC LIMIT 1"
    )
    if row is None:
        return None
    return Checkpoint(
        tree_size=row["tree_size"],
        head_hash=bytes(row["head_hash"]).hex(),
        created_at=row["created_at"],
        checkpoint=row["jws"],
    )


async def verify_chain(conn: asyncpg.Connection, *, batch: int = 5000) -> ChainReport:
    """Recompute the chain from genesis; name the first event that does not fit.

    Also compares against every checkpoint: an event under a checkpoint whose hash differs, or a
    log shorter than the latest checkpoint (deleted tail), is reported.
    """
    checkpoints = {
        r["tree_size"]: bytes(r["head_hash"])
        for r in await conn.fetch("SELECT tree_size, head_hash FROM audit_checkpoints")
    }
    latest_cp = max(checkpoints, default=None)
    prev = GENESIS
    expected_seq = 1
    last = 0
    while True:
        rows = await conn.fetch(
            "SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2",
            expected_seq,
            batch,
        )
        if not rows:
            break
        for row in rows:
            seq = row["seq"]
            if seq != expected_seq:
                return ChainReport(
                    ok=False,
                    size=last,
                    first_bad_seq=expected_seq,
                    problem=f"event {expected_seq} is missing",
                    checkpoint_size=latest_cp,
                )
            digest = chain_hash(prev, _entry(row).canonical())
            if bytes(row["prev_hash"]) != prev or bytes(row["hash"]) != digest:
                return ChainReport(
                    ok=False,
                    size=last,
                    first_bad_seq=seq,
                    problem=f"event {seq} does not match its hash (edited or reordered)",
                    checkpoint_size=latest_cp,
                )
            if seq in checkpoints and checkpoints[seq] != digest:
                return ChainReport(
                    ok=False,
                    size=last,
                    first_bad_seq=seq,
                    problem=f"the chain up to event {seq} differs from its signed checkpoint",
                    checkpoint_size=latest_cp,
                )
            prev = digest
            last = seq
            expected_seq += 1
    if latest_cp is not None and last < latest_cp:
        return ChainReport(
            ok=False,
            size=last,
            first_bad_seq=last + 1,
            problem=(
                f"the log ends at event {last} but checkpoint {latest_cp} was signed:"
                " events were deleted from the tail"
            ),
            checkpoint_size=latest_cp,
        )
    return ChainReport(ok=True, size=last, checkpoint_size=latest_cp)
