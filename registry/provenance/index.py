"""An in-memory index of the perceptual hashes of every signed output.

A scan with numpy (XOR, then ``bitwise_count``) over 100,000 64-bit hashes takes well under a
millisecond, where a database scan takes tens. Each process holds its own copy and brings it
up to date before every search with one indexed query for rows it has not seen, so an output
signed by any process is found by every other.

Identity values are handed out when a row is inserted, not when it commits, so a reader can
see id 7 committed while id 6 is still in flight (or was rolled back). Ids skipped that way
are kept as gaps and asked for again on later refreshes until ``gap_horizon`` seconds have
passed, far longer than a signing transaction lasts.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import numpy as np

from registry.provenance import repository

if TYPE_CHECKING:
    import asyncpg
    import numpy.typing as npt

__all__ = ["PhashIndex"]

_INITIAL_CAPACITY = 1024
_MAX_GAPS = 10_000


class PhashIndex:
    def __init__(self, *, gap_horizon: float = 300.0) -> None:
        self.gap_horizon = gap_horizon
        self._ids: npt.NDArray[np.int64] = np.empty(_INITIAL_CAPACITY, dtype=np.int64)
        self._hashes: npt.NDArray[np.uint64] = np.empty(_INITIAL_CAPACITY, dtype=np.uint64)
        self._size = 0
        self._last_id = 0
        self._gaps: dict[int, float] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return self._size

    async def refresh(self, conn: asyncpg.Connection) -> None:
        """Load outputs committed since the last refresh (one indexed query)."""
        async with self._lock:
            self._expire_gaps()
            rows = await repository.phashes_since(conn, after=self._last_id, gaps=list(self._gaps))
            if rows:
                self._add(rows)

    def nearest(self, phash: int, *, max_distance: int, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (row id, distance) pairs within ``max_distance`` bits, nearest first."""
        if self._size == 0 or limit <= 0:
            return []
        distances = np.bitwise_count(self._hashes[: self._size] ^ np.uint64(phash))
        hits = np.flatnonzero(distances <= max_distance)
        if hits.size == 0:
            return []
        ids = self._ids[hits]
        order = np.lexsort((ids, distances[hits]))[:limit]
        return [(int(ids[i]), int(distances[hits[i]])) for i in order]

    def _add(self, rows: list[tuple[int, int]]) -> None:
        now = time.monotonic()
        seen = {row_id for row_id, _ in rows}
        for row_id in seen & self._gaps.keys():
            del self._gaps[row_id]
        newest = max(seen)
        if newest > self._last_id:
            # Only recent ids can belong to a transaction still in flight.
            for missing in range(max(self._last_id + 1, newest - _MAX_GAPS), newest):
                if missing not in seen:
                    self._gaps[missing] = now
            self._last_id = newest
        self._reserve(self._size + len(rows))
        end = self._size + len(rows)
        self._ids[self._size : end] = [row_id for row_id, _ in rows]
        # The database keeps the 64 hash bits in a signed bigint; reinterpret them unsigned.
        self._hashes[self._size : end] = np.array(
            [value for _, value in rows], dtype=np.int64
        ).view(np.uint64)
        self._size = end
        while len(self._gaps) > _MAX_GAPS:
            del self._gaps[next(iter(self._gaps))]

    def _reserve(self, needed: int) -> None:
        capacity = len(self._ids)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        self._ids = np.resize(self._ids, capacity)
        self._hashes = np.resize(self._hashes, capacity)

    def _expire_gaps(self) -> None:
        cutoff = time.monotonic() - self.gap_horizon
        for row_id in [row_id for row_id, since in self._gaps.items() if since < cutoff]:
            del self._gaps[row_id]
