"""The audit log's Merkle tree (RFC 9162 section 2.1): roots and proofs from the stored hashes.

Leaf ``i`` is the stored ``hash`` of event ``seq = i + 1`` (its chain hash); the hashing and
the proofs' shapes are ``verifier.merkle``'s, which the offline verifier shares. The hashes of
complete, aligned subtrees of ``2**STORED_LEVEL`` leaves and more are kept in
``audit_merkle_blocks``, filled in order by ``extend`` the first time something needs them (a
checkpoint, a proof); smaller subtrees are recomputed from at most ``2**STORED_LEVEL - 1``
event hashes each. A root or a proof at any size then reads about log2(n) block rows and a
few short runs of event hashes, whatever the log's length.

The events are append-only and committed in ``seq`` order (appenders hold the head's lock
until they commit), so every event up to the committed head exists, and a block computed once
stays right; ``registry audit verify`` recomputes the stored blocks from the events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from registry.core.errors import InvalidRequest, RegistryError
from verifier import merkle

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import asyncpg

STORED_LEVEL = 8
CHUNK = 1 << STORED_LEVEL
# Event hashes read per statement while filling blocks (64 blocks of 256).
_FILL_LEAVES = 64 * CHUNK


class AuditLogBroken(RegistryError):
    """Events the tree needs are missing: the log was tampered with (``registry audit verify``
    names the event)."""

    code = "audit_log_broken"
    kind = "internal"


class ProofRequestInvalid(InvalidRequest):
    """A proof asked for that cannot exist (a leaf past the tree, a tree past the log)."""

    code = "proof_request_invalid"


class LeafIndexOutOfRange(ProofRequestInvalid):
    code = "leaf_index_out_of_range"


class TreeSizeBeyondLog(ProofRequestInvalid):
    code = "tree_size_beyond_log"


class ConsistencyRangeInvalid(ProofRequestInvalid):
    code = "consistency_range_invalid"


class InclusionProof(msgspec.Struct, kw_only=True, frozen=True):
    """That event ``seq`` (leaf ``leaf_index = seq - 1``) is in the tree of ``tree_size``."""

    leaf_index: int
    tree_size: int
    seq: int
    event_hash: str
    """The leaf itself: the event's stored hash (hex)."""
    leaf_hash: str
    """Its RFC 9162 leaf hash, SHA-256(0x00 || event hash) (hex)."""
    audit_path: list[str]
    root: str


class ConsistencyProof(msgspec.Struct, kw_only=True, frozen=True):
    """That the tree of ``to`` leaves extends the tree of ``from`` leaves."""

    from_: int = msgspec.field(name="from")
    to: int
    path: list[str]
    root_from: str
    root_to: str


async def log_size(conn: asyncpg.Connection) -> int:
    """The number of committed events (the chain head's ``seq``)."""
    size = await conn.fetchval("SELECT seq FROM audit_head")
    if size is None:
        msg = "audit_head is missing: the database was not migrated by this service"
        raise RuntimeError(msg)
    return int(size)


async def _leaf_hashes(conn: asyncpg.Connection, start: int, end: int) -> list[bytes]:
    """The Merkle leaf hashes of leaves ``[start, end)`` (events ``start + 1 .. end``)."""
    if end <= start:
        return []
    rows = await conn.fetch(
        "SELECT hash FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq", start, end
    )
    if len(rows) != end - start:
        msg = f"events {start + 1} to {end} are not all in the audit log"
        raise AuditLogBroken(msg)
    return [merkle.leaf_hash(bytes(r["hash"])) for r in rows]


async def _stored_count(conn: asyncpg.Connection, level: int) -> int:
    """How many blocks of ``level`` are stored (they are filled in order, from index 0)."""
    value = await conn.fetchval(
        "SELECT coalesce(max(idx) + 1, 0) FROM audit_merkle_blocks WHERE level = $1", level
    )
    return int(value)


async def _insert(conn: asyncpg.Connection, level: int, first: int, hashes: list[bytes]) -> None:
    await conn.execute(
        "INSERT INTO audit_merkle_blocks (level, idx, hash)"
        " SELECT $1, $2 + i - 1, h FROM unnest($3::bytea[]) WITH ORDINALITY AS u(h, i)"
        " ON CONFLICT (level, idx) DO NOTHING",
        level,
        first,
        hashes,
    )


async def extend(conn: asyncpg.Connection, size: int) -> None:
    """Store every complete block of ``STORED_LEVEL`` and up within the first ``size`` leaves.

    Cheap when they are already there (one indexed look-up per level); another process doing
    the same at the same time inserts the same rows, and either keeps them.
    """
    have = await _stored_count(conn, STORED_LEVEL)
    want = size >> STORED_LEVEL
    while have < want:
        batch = min(want - have, _FILL_LEAVES // CHUNK)
        leaves = await _leaf_hashes(conn, have * CHUNK, (have + batch) * CHUNK)
        blocks = [
            merkle.root_of_leaf_hashes(leaves[i * CHUNK : (i + 1) * CHUNK]) for i in range(batch)
        ]
        await _insert(conn, STORED_LEVEL, have, blocks)
        have += batch
    level = STORED_LEVEL + 1
    while size >> level:
        have, want = await _stored_count(conn, level), size >> level
        if have < want:
            rows = await conn.fetch(
                "SELECT idx, hash FROM audit_merkle_blocks WHERE level = $1"
                " AND idx >= $2 AND idx < $3 ORDER BY idx",
                level - 1,
                2 * have,
                2 * want,
            )
            children = [bytes(r["hash"]) for r in rows]
            if len(children) != 2 * (want - have):
                msg = f"stored Merkle blocks of level {level - 1} are missing"
                raise AuditLogBroken(msg)
            parents = [
                merkle.node_hash(children[2 * i], children[2 * i + 1]) for i in range(want - have)
            ]
            await _insert(conn, level, have, parents)
        level += 1


async def _fetch_blocks(
    conn: asyncpg.Connection, size: int, wanted: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """The hash of each block ``(level, idx)``, all within the first ``size`` leaves."""
    wanted = set(wanted)
    found: dict[tuple[int, int], bytes] = {}
    stored = sorted(b for b in wanted if b[0] >= STORED_LEVEL)
    if stored:
        for attempt in range(2):
            rows = await conn.fetch(
                "SELECT b.level, b.idx, b.hash FROM audit_merkle_blocks b"
                " JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) USING (level, idx)",
                [level for level, _ in stored],
                [idx for _, idx in stored],
            )
            found.update({(r["level"], r["idx"]): bytes(r["hash"]) for r in rows})
            if all(b in found for b in stored):
                break
            if attempt == 0:
                await extend(conn, size)
        else:
            msg = "stored Merkle blocks are missing"
            raise AuditLogBroken(msg)
    # Smaller blocks: recomputed from their chunk's event hashes, one read per chunk.
    by_chunk: dict[int, list[tuple[int, int]]] = {}
    for level, idx in wanted:
        if level < STORED_LEVEL:
            by_chunk.setdefault((idx << level) >> STORED_LEVEL, []).append((level, idx))
    for blocks in by_chunk.values():
        start = min(idx << level for level, idx in blocks)
        end = max((idx + 1) << level for level, idx in blocks)
        leaves = await _leaf_hashes(conn, start, end)
        for level, idx in blocks:
            first = (idx << level) - start
            found[(level, idx)] = merkle.root_of_leaf_hashes(leaves[first : first + (1 << level)])
    return found


async def _range_hashes(
    conn: asyncpg.Connection, size: int, ranges: Sequence[tuple[int, int]]
) -> list[bytes]:
    """MTH of each leaf range, from the blocks each is made of."""
    split = [merkle.aligned_blocks(start, end) for start, end in ranges]
    found = await _fetch_blocks(conn, size, (b for blocks in split for b in blocks))
    return [merkle.fold([found[b] for b in blocks]) for blocks in split]


async def root(conn: asyncpg.Connection, size: int) -> bytes:
    """MTH of the first ``size`` events (``size`` at most the log's)."""
    if size == 0:
        return merkle.EMPTY_ROOT
    (value,) = await _range_hashes(conn, size, [(0, size)])
    return value


async def _check_size(conn: asyncpg.Connection, size: int) -> None:
    current = await log_size(conn)
    if size > current:
        msg = f"tree size {size} is larger than the log ({current} events)"
        raise TreeSizeBeyondLog(msg, log_size=current)


async def inclusion_proof(conn: asyncpg.Connection, index: int, tree_size: int) -> InclusionProof:
    """The audit path of leaf ``index`` (event ``index + 1``) in the tree of ``tree_size``."""
    if index >= tree_size:
        msg = f"leaf index {index} is not in a tree of size {tree_size}"
        raise LeafIndexOutOfRange(msg)
    await _check_size(conn, tree_size)
    ranges = merkle.inclusion_ranges(index, tree_size)
    *path, tree_root = await _range_hashes(conn, tree_size, [*ranges, (0, tree_size)])
    event = await conn.fetchval("SELECT hash FROM audit_events WHERE seq = $1", index + 1)
    if event is None:
        msg = f"event {index + 1} is not in the audit log"
        raise AuditLogBroken(msg)
    leaf = merkle.leaf_hash(bytes(event))
    # The path was built from stored blocks: check it leads to the root built from them too.
    try:
        merkle.verify_inclusion(index, tree_size, leaf, path, tree_root)
    except merkle.MerkleProofInvalid as exc:
        msg = f"the stored Merkle blocks disagree with the events: {exc}"
        raise AuditLogBroken(msg) from None
    return InclusionProof(
        leaf_index=index,
        tree_size=tree_size,
        seq=index + 1,
        event_hash=bytes(event).hex(),
        leaf_hash=leaf.hex(),
        audit_path=[h.hex() for h in path],
        root=tree_root.hex(),
    )


async def consistency_proof(conn: asyncpg.Connection, first: int, second: int) -> ConsistencyProof:
    """The proof that the tree of ``second`` events extends the tree of ``first`` (>= 1)."""
    if first < 1 or first > second:
        msg = f"no consistency proof from size {first} to size {second}: need 1 <= from <= to"
        raise ConsistencyRangeInvalid(msg)
    await _check_size(conn, second)
    ranges = merkle.consistency_ranges(first, second)
    *path, old_root, new_root = await _range_hashes(
        conn, second, [*ranges, (0, first), (0, second)]
    )
    try:
        merkle.verify_consistency(first, second, old_root, new_root, path)
    except merkle.MerkleProofInvalid as exc:
        msg = f"the stored Merkle blocks disagree with the events: {exc}"
        raise AuditLogBroken(msg) from None
    return ConsistencyProof(
        from_=first,
        to=second,
        path=[h.hex() for h in path],
        root_from=old_root.hex(),
        root_to=new_root.hex(),
    )


async def stored_blocks(conn: asyncpg.Connection) -> dict[tuple[int, int], bytes]:
    """Every stored block, for ``registry audit verify`` to recompute."""
    rows = await conn.fetch("SELECT level, idx, hash FROM audit_merkle_blocks")
    return {(r["level"], r["idx"]): bytes(r["hash"]) for r in rows}
