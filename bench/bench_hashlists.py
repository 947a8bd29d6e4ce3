"""Hash-list rows: matching one image against 1,000,000 entries, and importing them.

Run alone with ``python -m bench bench_hashlists``. Each row puts ``moderation.HashIndex``
next to raw numpy (or a bare line loop) doing the same work in the same run, in-process.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.context import InProcessTable
from bench.harness import Row, once, timed
from moderation import HashIndex, iter_csv
from moderation.hashlists import EntryInput

if TYPE_CHECKING:
    from bench.context import Bench, Table

ENTRIES = 1_000_000
VARIANTS = 5  # the image's pHash, its mirror and three rotations
MAX_DISTANCE = 10
N_MATCH = 300


def _random_hashes(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, size=count, dtype=np.uint64)


def _write_csv(path: Path, hashes: np.ndarray) -> None:
    with path.open("w") as out:
        out.write("hash,label,source\n")
        out.writelines(f"{int(h):016x},entry-{i},bench\n" for i, h in enumerate(hashes))


def run(_: Bench) -> list[Table]:
    return [InProcessTable("Hash lists (issue 5)", _rows())]


def _rows() -> list[Row]:
    hashes = _random_hashes(ENTRIES, seed=1)
    queries = [int(q) for q in _random_hashes(VARIANTS, seed=2)]
    rows = []

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.csv"
        _write_csv(path, hashes)
        index = HashIndex()
        index.define_list("bench", "block")

        def ours_import() -> None:
            with path.open() as lines:
                index.add_many("bench", iter_csv(lines))

        def raw_import() -> None:
            with path.open() as lines:
                next(lines)
                np.fromiter((int(line[:16], 16) for line in lines), dtype=np.uint64)

        ours = once(ours_import)
        raw = once(raw_import)
        rows.append(
            Row(
                f"import {ENTRIES:,} CSV lines (iter_csv + add_many)",
                ours,
                raw,
                "int(hex) per line into np.fromiter",
            )
        )

    def ours_match() -> None:
        index.match(queries, MAX_DISTANCE)

    def raw_match() -> None:
        best = np.full(ENTRIES, 255, dtype=np.uint8)
        for q in queries:
            np.minimum(best, np.bitwise_count(hashes ^ np.uint64(q)), out=best)
        np.flatnonzero(best <= MAX_DISTANCE)

    rows.append(
        Row(
            f"match 1 image ({VARIANTS} hashes) vs {ENTRIES:,} entries",
            timed(ours_match, N_MATCH),
            timed(raw_match, N_MATCH),
            "numpy xor + bitwise_count",
        )
    )

    single = [queries[0]]
    rows.append(
        Row(
            f"match 1 hash vs {ENTRIES:,} entries",
            timed(lambda: index.match(single, MAX_DISTANCE), N_MATCH),
            timed(
                lambda: np.flatnonzero(
                    np.bitwise_count(hashes ^ np.uint64(single[0])) <= MAX_DISTANCE
                ),
                N_MATCH,
            ),
            "numpy xor + bitwise_count",
        )
    )

    built = HashIndex()
    built.define_list("bench", "block")
    entries = [EntryInput(hash=int(h), label=f"entry-{i}") for i, h in enumerate(hashes[:200_000])]
    rows.append(
        Row(
            "add_many 200,000 EntryInput values",
            once(lambda: built.add_many("bench", entries)),
            None,
        )
    )
    return rows
