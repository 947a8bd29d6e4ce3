"""Merkle tree hashes and proofs of RFC 9162 section 2.1 (as in RFC 6962 and C2SP tlog).

The tree is over a list of leaves ``D[0:n]``; hashing is domain-separated:

- a leaf hash is ``SHA-256(0x00 || leaf)``, an interior node ``SHA-256(0x01 || left || right)``;
- ``MTH({})`` is ``SHA-256()`` of nothing; ``MTH(D[0:n])`` for ``n > 1`` splits at ``k``, the
  largest power of two smaller than ``n``: ``node(MTH(D[0:k]), MTH(D[k:n]))``.

In the registry's audit log a leaf is one event's stored ``hash`` (32 bytes: the event's
chain hash, SHA-256 of the previous hash and the event's canonical JSON), and leaf index ``i``
is the event with ``seq = i + 1``. So the Merkle leaf hash of event ``seq`` is
``SHA-256(0x00 || hash of event seq)``.

Proofs are built from the hashes of subtrees. The functions named ``*_ranges`` say which
subtrees, as half-open leaf ranges ``(start, end)``, without touching any hash, so a store
that keeps the hashes of complete subtrees (the registry keeps those of 256 leaves and more)
can answer them without reading every leaf; ``aligned_blocks`` splits such a range into the
complete power-of-two subtrees it is made of, and ``fold`` combines their hashes.

Everything here is pure computation on bytes: the offline verifier and the service share it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from verifier.errors import VerifierError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleProofInvalid",
    "aligned_blocks",
    "consistency_proof",
    "consistency_ranges",
    "fold",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "root_of_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
# Proofs of a tree of up to 2**64 leaves have at most 64 (inclusion) or 128 (consistency)
# hashes; anything longer is refused before it is hashed.
MAX_TREE_SIZE = 2**64 - 1
MAX_PROOF_HASHES = 128


class MerkleProofInvalid(VerifierError):
    """A proof that does not verify, or a request for one that cannot exist."""

    code = "merkle_proof_invalid"


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves whose leaf hashes are ``hashes``, in O(n) time and O(log n) memory."""
    if not hashes:
        return EMPTY_ROOT
    # A stack of complete subtrees (size, hash), sizes strictly decreasing: the tree's
    # "frontier". Two equal neighbours merge into their parent.
    stack: list[tuple[int, bytes]] = []
    for value in hashes:
        size, current = 1, value
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            current = node_hash(left, current)
            size *= 2
        stack.append((size, current))
    return fold([h for _, h in stack])


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[0:n]) of raw leaves."""
    return root_of_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def fold(block_hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from the hashes of its ``aligned_blocks``, largest first.

    A range of aligned complete subtrees of decreasing sizes hashes as
    ``node(B0, node(B1, ... node(Bk-1, Bk)))``: that is MTH's split at the largest power of
    two, applied down the right edge.
    """
    if not block_hashes:
        raise ValueError("an empty range has no subtree hash")
    result = block_hashes[-1]
    for value in reversed(block_hashes[:-1]):
        result = node_hash(value, result)
    return result


def aligned_blocks(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees ``(level, index)`` that make up the range ``[start, end)``.

    Block ``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``.
    Every range a tree or proof is made of starts at a multiple of the smallest power of two
    at least as large as it, so it is its size's binary digits, largest first.
    """
    size = end - start
    if size <= 0:
        raise ValueError("an empty range has no blocks")
    if start & ((1 << (size - 1).bit_length()) - 1):
        raise ValueError(f"[{start}, {end}) is not a subtree range")
    blocks = []
    offset = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            blocks.append((level, offset >> level))
            offset += 1 << level
    return blocks


def _check_size(size: int) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise MerkleProofInvalid(f"tree size {size} is out of range")


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees of the audit path of leaf ``index`` in a tree of ``size`` leaves, in proof
    order (leaf level first): RFC 9162 section 2.1.3.1, ``PATH(m, D[n])``."""
    _check_size(size)
    if not 0 <= index < size:
        raise MerkleProofInvalid(f"leaf index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    # Walk from the root down to the leaf; the siblings met are the path, root side first.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, size: int) -> list[tuple[int, int]]:
    """The subtrees of the consistency proof from ``old_size`` to ``size``, in proof order:
    RFC 9162 section 2.1.4.1, ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)``."""
    _check_size(size)
    if not 0 <= old_size <= size:
        raise MerkleProofInvalid(f"no consistency proof from size {old_size} to size {size}")
    if old_size in {0, size}:
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m = 0, size, old_size
    complete = True  # the "b" flag: the subtree is still the whole of the old tree's left edge
    # SUBPROOF recurses into one side, appending the other side's hash after what it returns:
    # collect those from the root down, then reverse.
    while m != end:
        k = _split(end - start)
        if m - start <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            complete = False
    if not complete:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _hashes_of(ranges: Sequence[tuple[int, int]], leaf_hashes: Sequence[bytes]) -> list[bytes]:
    return [root_of_leaf_hashes(leaf_hashes[start:end]) for start, end in ranges]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` among raw ``leaves`` (all of them in memory)."""
    hashes = [leaf_hash(leaf) for leaf in leaves]
    return _hashes_of(inclusion_ranges(index, len(hashes)), hashes)


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from the first ``old_size`` of raw ``leaves`` to all of them."""
    hashes = [leaf_hash(leaf) for leaf in leaves]
    return _hashes_of(consistency_ranges(old_size, len(hashes)), hashes)


def _check_hashes(proof: Sequence[bytes], *named: tuple[str, bytes]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise MerkleProofInvalid(f"a proof of {len(proof)} hashes is too long")
    for value in proof:
        if len(value) != HASH_SIZE:
            raise MerkleProofInvalid(f"a proof hash is {len(value)} bytes, not {HASH_SIZE}")
    for name, value in named:
        if len(value) != HASH_SIZE:
            raise MerkleProofInvalid(f"the {name} is {len(value)} bytes, not {HASH_SIZE}")


def _shift_while_lsb_clear(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until fn's lowest bit is set or fn is 0."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` proves leaf hash ``leaf`` at ``index`` to be under (RFC 9162
    section 2.1.3.2); raises when the path cannot be one for that index and size."""
    _check_size(size)
    _check_hashes(proof, ("leaf hash", leaf))
    if not 0 <= index < size:
        raise MerkleProofInvalid(f"leaf index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            raise MerkleProofInvalid("the audit path is longer than the tree is high")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            fn, sn = _shift_while_lsb_clear(fn, sn)
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofInvalid("the audit path is shorter than the tree is high")
    return result


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Check that leaf hash ``leaf`` is leaf ``index`` of the tree of ``size`` with root
    ``expected_root``; raises ``MerkleProofInvalid`` otherwise."""
    _check_hashes((), ("root", expected_root))
    if root_from_inclusion_proof(index, size, leaf, proof) != expected_root:
        raise MerkleProofInvalid("the audit path leads to another root")


def _without_path(
    old_size: int, size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """The cases RFC 9162 gives no path for; True when one of them holds."""
    if not 0 <= old_size <= size:
        raise MerkleProofInvalid(f"size {old_size} is larger than size {size}")
    if old_size == size:
        if proof:
            raise MerkleProofInvalid("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise MerkleProofInvalid("two trees of the same size have different roots")
        return True
    if old_size == 0:
        # Every tree extends the empty one; RFC 9162 defines no proof for it.
        if proof:
            raise MerkleProofInvalid("a proof from the empty tree must be empty")
        return True
    if not proof:
        raise MerkleProofInvalid("the consistency proof is empty")
    return False


def verify_consistency(
    old_size: int,
    size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree of ``size`` with ``new_root`` extends the one of ``old_size`` with
    ``old_root`` (RFC 9162 section 2.1.4.2); raises ``MerkleProofInvalid`` otherwise."""
    _check_size(size)
    _check_hashes(proof, ("old root", old_root), ("new root", new_root))
    if _without_path(old_size, size, old_root, new_root, proof):
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a complete tree: its root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for value in path[1:]:
        if sn == 0:
            raise MerkleProofInvalid("the consistency proof is too long")
        if fn & 1 or fn == sn:
            first = node_hash(value, first)
            second = node_hash(value, second)
            fn, sn = _shift_while_lsb_clear(fn, sn)
        else:
            second = node_hash(second, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofInvalid("the consistency proof is too short")
    if first != old_root:
        raise MerkleProofInvalid("the consistency proof does not lead to the old root")
    if second != new_root:
        raise MerkleProofInvalid("the consistency proof does not lead to the new root")


def subtree_hashes(
    ranges: Sequence[tuple[int, int]], block_hash: Callable[[int, int], bytes]
) -> list[bytes]:
    """The hash of each range, from ``block_hash(level, index)`` of its aligned blocks."""
    return [fold([block_hash(*b) for b in aligned_blocks(s, e)]) for s, e in ranges]
