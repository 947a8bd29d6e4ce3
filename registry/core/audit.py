"""The tamper-evident audit log: a hash chain of events, a Merkle tree over it, signed checkpoints.

Each event's hash is SHA-256(previous hash || canonical JSON of the event), so changing or
removing any event breaks every hash after it. The event hashes are also the leaves of an
RFC 9162 Merkle tree (``registry.core.audit_tree``): leaf ``i`` is event ``seq = i + 1``'s
hash, so one event's inclusion, or that a later log extends an earlier one, is proved with
about log2(n) hashes instead of the whole log.

Checkpoints sign (tree size, head hash, Merkle root, time) with the registry's active key,
twice: a compact JWS (``audit-checkpoint+jwt``, verifiable with the JWKS) and a C2SP
tlog-checkpoint signed note (``verifier.note``: Ed25519 or ECDSA P-256 signature type, as
the active key is). An outside party holding one can detect a rewritten or truncated log even
if an attacker recomputes the chain.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import msgspec

from registry.core import audit_tree
from verifier import merkle, note

if TYPE_CHECKING:
    from collections.abc import Mapping

    import asyncpg

    from keys import Signer

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
    """Compact JWS over {iss, tree_size, head, root, iat}, verifiable with the JWKS."""
    root_hash: str | None = None
    """The RFC 9162 Merkle root of the first ``tree_size`` events (hex)."""
    origin: str | None = None
    note: str | None = None
    """The same checkpoint as a C2SP signed note (origin, tree size, base64 root)."""
    note_key: str | None = None
    """The verifier key (``name+keyid+base64``) of the key that signed the note."""


class ChainReport(msgspec.Struct, kw_only=True, frozen=True):
    ok: bool
    size: int
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoint_size: int | None = None


def chain_hash(prev: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(prev + canonical).digest()


def note_origin(issuer: str) -> str:
    """The checkpoints' origin line and note key name: the issuer without its scheme, then
    ``/audit`` (C2SP recommends a schema-less URL without spaces or ``+``)."""
    parts = urlsplit(issuer)
    base = (parts.netloc + parts.path).rstrip("/") if parts.netloc else issuer.strip("/")
    cleaned = "".join("-" if char.isspace() or char == "+" else char for char in base)
    return f"{cleaned or 'registry'}/audit"


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


async def tenant_events(conn: asyncpg.Connection, tenant: str, *, up_to: int) -> list[AuditEvent]:
    """The events recorded in ``tenant`` (their ``tenant`` column), up to ``seq`` ``up_to``."""
    rows = await conn.fetch(
        "SELECT * FROM audit_events WHERE tenant = $1 AND seq <= $2 ORDER BY seq", tenant, up_to
    )
    return [_event(r) for r in rows]


def hashed_form(event: AuditEvent) -> dict[str, Any]:
    """The event with its hashed fields exactly as hashed (``occurred_at`` in its canonical
    form), then ``prev_hash`` and ``hash``: SHA-256 of ``prev_hash`` and the sorted compact
    JSON of the other fields gives ``hash`` back (``verifier.export`` checks it)."""
    entry = Entry(**{name: getattr(event, name) for name in Entry.__struct_fields__})
    body: dict[str, Any] = msgspec.json.decode(entry.canonical())
    body["prev_hash"] = event.prev_hash
    body["hash"] = event.hash
    return body


async def make_checkpoint(
    conn: asyncpg.Connection,
    signer: JwsSigner,
    *,
    issuer: str,
    note_signer: Signer | None = None,
) -> Checkpoint | None:
    """Sign the current head unless the latest checkpoint already covers it.

    The JWS is signed by ``signer``, the signed note by ``note_signer`` (the service passes
    its active key for both); without ``note_signer`` only the JWS is made. An empty log has
    no checkpoint.
    """
    head_seq, head_hash = await _head(conn)
    latest = await conn.fetchval("SELECT max(tree_size) FROM audit_checkpoints")
    if head_seq == 0 or (latest is not None and latest >= head_seq):
        return None
    root_hash = await audit_tree.root(conn, head_seq)
    now = datetime.now(UTC)
    head_hex = head_hash.hex()
    jws = signer.sign_jws(
        {
            "iss": issuer,
            "tree_size": head_seq,
            "head": head_hex,
            "root": root_hash.hex(),
            "iat": int(now.timestamp()),
        },
        typ=CHECKPOINT_TYP,
    )
    origin = note_origin(issuer)
    signed_note = note_key = None
    if note_signer is not None:
        text = note.checkpoint_text(origin, head_seq, root_hash)
        signed_note = note.sign_note(text, origin, note_signer)
        note_key = note.note_key(origin, note_signer.public_key()).verifier_key()
    inserted = await conn.fetchval(
        "INSERT INTO audit_checkpoints"
        " (tree_size, head_hash, created_at, jws, root_hash, note, note_key)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tree_size) DO NOTHING"
        " RETURNING tree_size",
        head_seq,
        head_hash,
        now,
        jws,
        root_hash,
        signed_note,
        note_key,
    )
    if inserted is None:  # another process signed the same head a moment ago
        return None
    return Checkpoint(
        tree_size=head_seq,
        head_hash=head_hex,
        created_at=now,
        checkpoint=jws,
        root_hash=root_hash.hex(),
        origin=origin if signed_note else None,
        note=signed_note,
        note_key=note_key,
    )


def _checkpoint(row: asyncpg.Record) -> Checkpoint:
    signed_note = row["note"]
    origin = None
    if signed_note is not None:
        origin = signed_note.partition("\n")[0]
    return Checkpoint(
        tree_size=row["tree_size"],
        head_hash=bytes(row["head_hash"]).hex(),
        created_at=row["created_at"],
        checkpoint=row["jws"],
        root_hash=bytes(row["root_hash"]).hex() if row["root_hash"] is not None else None,
        origin=origin,
        note=signed_note,
        note_key=row["note_key"],
    )


async def latest_checkpoint(conn: asyncpg.Connection) -> Checkpoint | None:
    row = await conn.fetchrow(
        "SELECT tree_size, head_hash, created_at, jws, root_hash, note, note_key"
        " FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    return None if row is None else _checkpoint(row)


async def latest_note(conn: asyncpg.Connection) -> str | None:
    """The newest checkpoint that has a signed note, as that note."""
    value = await conn.fetchval(
        "SELECT note FROM audit_checkpoints WHERE note IS NOT NULL ORDER BY tree_size DESC LIMIT 1"
    )
    return None if value is None else str(value)


class _TreeCheck:
    """``verify_chain``'s Merkle part: rebuilds the tree's right edge as the events pass and
    compares the stored blocks and the checkpoints' roots with it."""

    def __init__(self, roots: dict[int, bytes], stored: dict[tuple[int, int], bytes]) -> None:
        self.roots = roots
        self.stored = stored
        # Complete subtrees (level, hash) along the right edge, largest first.
        self.edge: list[tuple[int, bytes]] = []
        self.size = 0

    def add(self, seq: int, event_hash: bytes) -> tuple[int, str] | None:
        """Add event ``seq``'s leaf; the first problem it shows, as (event, problem)."""
        index = self.size
        level, value = 0, merkle.leaf_hash(event_hash)
        problem = None
        while self.edge and self.edge[-1][0] == level:
            value = merkle.node_hash(self.edge.pop()[1], value)
            level += 1
            stored = self.stored.get((level, index >> level))
            if problem is None and stored is not None and stored != value:
                first = ((index >> level) << level) + 1
                problem = (
                    first,
                    f"the stored Merkle subtree of events {first} to {seq} does not match them",
                )
        self.edge.append((level, value))
        self.size += 1
        if problem is not None:
            return problem
        expected = self.roots.get(seq)
        if expected is not None and expected != merkle.fold([h for _, h in self.edge]):
            return seq, f"the Merkle root up to event {seq} differs from its signed checkpoint"
        return None

    def finish(self, last: int) -> tuple[int, str] | None:
        beyond = [(level, idx) for level, idx in self.stored if (idx + 1) << level > last]
        if beyond:
            return last + 1, f"stored Merkle subtrees cover events past the log's end ({last})"
        return None


def _event_problem(
    row: asyncpg.Record, seq: int, prev: bytes, digest: bytes, checkpoints: dict[int, bytes]
) -> tuple[int, str] | None:
    """What is wrong with the event expected at ``seq``, as (event, problem)."""
    if row["seq"] != seq:
        return seq, f"event {seq} is missing"
    if bytes(row["prev_hash"]) != prev or bytes(row["hash"]) != digest:
        return seq, f"event {seq} does not match its hash (edited or reordered)"
    if seq in checkpoints and checkpoints[seq] != digest:
        return seq, f"the chain up to event {seq} differs from its signed checkpoint"
    return None


async def verify_chain(conn: asyncpg.Connection, *, batch: int = 5000) -> ChainReport:
    """Recompute the chain from genesis; name the first event that does not fit.

    Also compares against every checkpoint: an event under a checkpoint whose hash differs, or a
    log shorter than the latest checkpoint (deleted tail), is reported; and against the Merkle
    tree: a stored subtree hash, or a checkpoint's signed root, that the events do not give.
    """
    signed = await conn.fetch("SELECT tree_size, head_hash, root_hash FROM audit_checkpoints")
    checkpoints = {r["tree_size"]: bytes(r["head_hash"]) for r in signed}
    roots = {r["tree_size"]: bytes(r["root_hash"]) for r in signed if r["root_hash"] is not None}
    tree = _TreeCheck(roots, await audit_tree.stored_blocks(conn))
    latest_cp = max(checkpoints, default=None)
    prev = GENESIS
    expected_seq = 1
    last = 0

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(
            ok=False, size=last, first_bad_seq=seq, problem=problem, checkpoint_size=latest_cp
        )

    while True:
        rows = await conn.fetch(
            "SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2",
            expected_seq,
            batch,
        )
        if not rows:
            break
        for row in rows:
            digest = chain_hash(prev, _entry(row).canonical())
            found = _event_problem(row, expected_seq, prev, digest, checkpoints) or tree.add(
                expected_seq, digest
            )
            if found is not None:
                return broken(*found)
            prev = digest
            last = expected_seq
            expected_seq += 1
    if latest_cp is not None and last < latest_cp:
        return broken(
            last + 1,
            f"the log ends at event {last} but checkpoint {latest_cp} was signed:"
            " events were deleted from the tail",
        )
    found = tree.finish(last)
    if found is not None:
        return broken(*found)
    return ChainReport(ok=True, size=last, checkpoint_size=latest_cp)
