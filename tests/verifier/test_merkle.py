"""``verifier.merkle``: RFC 9162 section 2.1 trees and proofs.

Known answers: the 8-leaf reference tree of RFC 6962's test suite (Certificate Transparency,
also transparency-dev/merkle's ``proof/verify_test.go``), its roots for every size and its
published inclusion and consistency proofs. Then a property test against a tree written here
from the RFC's recursive definitions alone: for every size up to 64 and every index and pair
of sizes, the proofs are the brute force's, they verify, and a flipped byte anywhere fails.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from verifier import merkle

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (leaf index, tree size, audit path)
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]
# (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _hex(values):
    return [bytes.fromhex(v) for v in values]


# --- An independent tree, straight from RFC 9162's recursive definitions. -----------------


def _bf_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def bf_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _bf_k(n)
    return hashlib.sha256(b"\x01" + bf_mth(leaves[:k]) + bf_mth(leaves[k:])).digest()


def bf_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _bf_k(n)
    if m < k:
        return [*bf_path(m, leaves[:k]), bf_mth(leaves[k:])]
    return [*bf_path(m - k, leaves[k:]), bf_mth(leaves[:k])]


def bf_subproof(m: int, leaves: list[bytes], *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [bf_mth(leaves)]
    k = _bf_k(n)
    if m <= k:
        return [*bf_subproof(m, leaves[:k], complete=complete), bf_mth(leaves[k:])]
    return [*bf_subproof(m - k, leaves[k:], complete=False), bf_mth(leaves[:k])]


def bf_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    return bf_subproof(m, leaves, complete=True) if 0 < m < len(leaves) else []


# --- Known answers. -----------------------------------------------------------------------


def test_roots_of_the_reference_tree():
    for size in range(1, 9):
        assert merkle.root(LEAVES[:size]) == ROOTS[size - 1]
        assert bf_mth(LEAVES[:size]) == ROOTS[size - 1]
    assert merkle.root([]).hex() == EMPTY_SHA256 == merkle.EMPTY_ROOT.hex()


def test_leaf_and_node_hashing_are_domain_separated():
    assert merkle.leaf_hash(b"") == ROOTS[0]
    assert merkle.node_hash(merkle.leaf_hash(LEAVES[0]), merkle.leaf_hash(LEAVES[1])) == ROOTS[1]
    assert merkle.leaf_hash(b"ab") != hashlib.sha256(b"ab").digest()


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_known_inclusion_proofs(index, size, path):
    proof = _hex(path)
    assert merkle.inclusion_proof(index, LEAVES[:size]) == proof
    leaf = merkle.leaf_hash(LEAVES[index])
    merkle.verify_inclusion(index, size, leaf, proof, ROOTS[size - 1])
    assert merkle.root_from_inclusion_proof(index, size, leaf, proof) == ROOTS[size - 1]
    _inclusion_probes_fail(index, size, leaf, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_known_consistency_proofs(old, new, path):
    proof = _hex(path)
    assert merkle.consistency_proof(old, LEAVES[:new]) == proof
    merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)
    if proof:
        _consistency_probes_fail(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def test_trivial_and_impossible_consistency():
    a, b = ROOTS[0], ROOTS[1]
    merkle.verify_consistency(0, 0, a, a, [])
    merkle.verify_consistency(0, 5, a, b, [])
    merkle.verify_consistency(3, 3, b, b, [])
    bad = [
        (1, 1, a, b, []),  # same size, other root
        (1, 0, a, b, []),  # the past
        (2, 1, a, b, []),
        (1, 2, a, b, []),  # an empty proof between different sizes
        (0, 1, a, a, [a]),  # a proof where none exists
        (1, 1, a, a, [a]),
    ]
    for old, new, r1, r2, proof in bad:
        with pytest.raises(merkle.MerkleProofInvalid):
            merkle.verify_consistency(old, new, r1, r2, proof)


def test_impossible_inclusion():
    some = merkle.leaf_hash(b"x")
    for index, size in [(0, 0), (1, 1), (2, 1), (-1, 4)]:
        with pytest.raises(merkle.MerkleProofInvalid):
            merkle.verify_inclusion(index, size, some, [], some)
    with pytest.raises(merkle.MerkleProofInvalid):
        merkle.verify_inclusion(0, 1, some, [], b"short")
    with pytest.raises(merkle.MerkleProofInvalid):
        merkle.inclusion_ranges(4, 4)
    with pytest.raises(merkle.MerkleProofInvalid):
        merkle.consistency_ranges(5, 4)


def _flip(value: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(value))
    return value[:i] + bytes([value[i] ^ (1 << rng.randrange(8))]) + value[i + 1 :]


def _inclusion_probes_fail(index, size, leaf, proof, root, rng=None):
    rng = rng or random.Random(index * 1000 + size)
    other = hashlib.sha256(b"other").digest()
    probes = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, _flip(leaf, rng), proof, root),
        (index, size, leaf, proof, _flip(root, rng)),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [root, *proof], root),
        (index, size, leaf, [*proof, b""], root),
    ]
    if proof:
        probes.append((index, size, leaf, proof[:-1], root))
        probes.append((index, size, leaf, [proof[0], other, *proof[1:]], root))
    for i in range(len(proof)):
        changed = list(proof)
        changed[i] = _flip(changed[i], rng)
        probes.append((index, size, leaf, changed, root))
    for probe in probes:
        if probe[:2] == (index, size) and probe[2:] == (leaf, proof, root):
            continue
        with pytest.raises(merkle.MerkleProofInvalid):
            merkle.verify_inclusion(*probe)


def _consistency_probes_fail(old, new, root1, root2, proof, rng=None):
    rng = rng or random.Random(old * 1000 + new)
    probes = [
        (old - 1, new, root1, root2, proof),
        (old + 1, new, root1, root2, proof),
        (old ^ 2, new, root1, root2, proof),
        (old, new * 2, root1, root2, proof),
        (old, new // 2, root1, root2, proof),
        (old, new, _flip(root1, rng), root2, proof),
        (old, new, root1, _flip(root2, rng), proof),
        (old, new, root2, root1, proof),
        (old, new, root1, root2, []),
        (old, new, root1, root2, [*proof, root1]),
        (old, new, root1, root2, [*proof, root2]),
        (old, new, root1, root2, [root1, *proof]),
        (old, new, root1, root2, [root2, *proof]),
        (old, new, root1, root2, [proof[0], *proof]),
        (old, new, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        changed = list(proof)
        changed[i] = _flip(changed[i], rng)
        probes.append((old, new, root1, root2, changed))
    for probe in probes:
        if probe == (old, new, root1, root2, proof):
            continue
        # Some probes name a valid other pair (e.g. size2 // 2 == size1); those may verify
        # only if they are what the brute force would prove, which they are not here.
        with pytest.raises(merkle.MerkleProofInvalid):
            merkle.verify_consistency(*probe)


# --- Property test against the brute force. ------------------------------------------------


def _random_leaves(n: int, rng: random.Random) -> list[bytes]:
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2])
def test_every_proof_of_every_tree_up_to_64_leaves(seed):
    rng = random.Random(seed)
    leaves = _random_leaves(64, rng)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    roots = [bf_mth(leaves[:n]) for n in range(65)]
    for n in range(1, 65):
        assert merkle.root(leaves[:n]) == roots[n]
        assert merkle.root_of_leaf_hashes(hashes[:n]) == roots[n]
        # The block decomposition a store uses gives the same root.
        blocks = merkle.aligned_blocks(0, n)
        by_block = [
            merkle.root_of_leaf_hashes(hashes[i << lvl : (i + 1) << lvl]) for lvl, i in blocks
        ]
        assert merkle.fold(by_block) == roots[n]
        for m in range(n):
            proof = merkle.inclusion_proof(m, leaves[:n])
            assert proof == bf_path(m, leaves[:n])
            merkle.verify_inclusion(m, n, hashes[m], proof, roots[n])
            _flip_one_fails_inclusion(m, n, hashes[m], proof, roots[n], rng)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, leaves[:n])
            assert proof == bf_proof(m, leaves[:n])
            merkle.verify_consistency(m, n, roots[m], roots[n], proof)
            _flip_one_fails_consistency(m, n, roots[m], roots[n], proof, rng)


def _flip_one_fails_inclusion(m, n, leaf, proof, root, rng):
    targets = ["leaf", "root", *range(len(proof))]
    for target in targets:
        args = [m, n, leaf, list(proof), root]
        if target == "leaf":
            args[2] = _flip(leaf, rng)
        elif target == "root":
            args[4] = _flip(root, rng)
        else:
            args[3][target] = _flip(proof[target], rng)
        with pytest.raises(merkle.MerkleProofInvalid):
            merkle.verify_inclusion(*args)


def _flip_one_fails_consistency(m, n, old_root, new_root, proof, rng):
    targets = ["old", "new", *range(len(proof))]
    for target in targets:
        args = [m, n, old_root, new_root, list(proof)]
        if target == "old":
            args[2] = _flip(old_root, rng)
        elif target == "new":
            args[3] = _flip(new_root, rng)
        else:
            args[4][target] = _flip(proof[target], rng)
        with pytest.raises(merkle.MerkleProofInvalid):
            merkle.verify_consistency(*args)


def test_proofs_from_stored_blocks_match_the_brute_force():
    """What the service does: proofs as ranges, ranges as aligned blocks, blocks as hashes."""
    rng = random.Random(7)
    leaves = _random_leaves(300, rng)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]

    def block(level: int, index: int) -> bytes:
        return merkle.root_of_leaf_hashes(hashes[index << level : (index + 1) << level])

    for n in (1, 2, 3, 255, 256, 257, 300):
        for m in sorted({0, 1, n // 3, n // 2, n - 2, n - 1} & set(range(n))):
            ranges = merkle.inclusion_ranges(m, n)
            assert merkle.subtree_hashes(ranges, block) == bf_path(m, leaves[:n])
        for m in sorted({1, 2, n // 2, n - 1, n} & set(range(1, n + 1))):
            ranges = merkle.consistency_ranges(m, n)
            assert merkle.subtree_hashes(ranges, block) == bf_proof(m, leaves[:n])


def test_aligned_blocks():
    assert merkle.aligned_blocks(0, 1) == [(0, 0)]
    assert merkle.aligned_blocks(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert merkle.aligned_blocks(8, 11) == [(1, 4), (0, 10)]
    assert merkle.aligned_blocks(256, 512) == [(8, 1)]
    with pytest.raises(ValueError, match="not a subtree range"):
        merkle.aligned_blocks(2, 5)


def test_oversized_inputs_are_refused_before_hashing():
    leaf = merkle.leaf_hash(b"")
    with pytest.raises(merkle.MerkleProofInvalid):
        merkle.verify_inclusion(0, 2**64, leaf, [], leaf)
    with pytest.raises(merkle.MerkleProofInvalid):
        merkle.verify_inclusion(0, 2, leaf, [leaf] * 200, leaf)
