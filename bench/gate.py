"""Issue 5 rows: the publish gate over HTTP against its floor, and the hash-list import.

The service decides on a 0.3 MP and a 4 MP JPEG, each request with two consent tokens
(verified online: signature, audience, live status from the database) against a protected
hash list of 1,000,000 entries, and records the decision. The floor (``bench.floor_server``,
route ``/v1/moderation/check``) does the library work of the same decision on the same
multipart body. The import row puts ``registry hashes import`` (CSV parse, COPY, merge into
the unique index) next to a bare asyncpg COPY of the same rows.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import asyncpg

from bench import fixtures
from bench.context import HttpTable, InProcessTable
from bench.harness import Row, Stats
from bench.load import check, compare
from bench.world import PROTECTED_ENTRIES, protected_hashes

if TYPE_CHECKING:
    import numpy as np

    from bench.context import Bench, Table
    from bench.load import Request
    from bench.world import World

SIZES = {"0.3 MP": (640, 480), "4 MP": (2000, 2000)}
FLOOR = (
    "key lookup and both tokens (pyjwt.decode + status row) on one connection; sha256, "
    "Pillow decode (draft), pHash and PDQ of the 8 flips/rotations (one 32x32 grey copy; "
    "four pdqhash dihedral runs at <= 512 px), c2pa Reader (no manifest), numpy scan of the "
    "1,000,000 pHashes per transform; the policy's prompt rules and score "
    "and hash bands; one INSERT of the decision with its evidence (JSON)"
)


def _allowed(body: bytes) -> bool:
    status: object = json.loads(body).get("safety_status")
    return status == "allowed"


def gate_request(world: World, label: str) -> tuple[str, Request]:
    """The row name and request for a gate decision on the ``label`` image."""
    world.import_protected()
    image = fixtures.photo(SIZES[label], seed=SIZES[label][0])
    request = world.gate_request(label, image)
    for target in world.both(request):
        check(target.base_url, request, _allowed)
    return f"POST /v1/moderation/check, {label}, 2 tokens, 1M list", request


async def _raw_copy(database_url: str, hashes: np.ndarray) -> Stats:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TEMP TABLE raw_copy (hash bytea, label text, source text)")
        records = [(int(h).to_bytes(8), f"entry-{i}", "bench") for i, h in enumerate(hashes)]
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "raw_copy", records=records, columns=("hash", "label", "source")
        )
        return Stats.of([time.perf_counter() - started])
    finally:
        await conn.close()


def run(bench: Bench) -> list[Table]:
    if not bench.http:
        return [bench.skipped("Publish gate (issue 5)")]
    world = bench.world()
    rows = []
    for label in SIZES:
        name, request = gate_request(world, label)
        rows.append(compare(name, FLOOR, *world.both(request), bench.settings))
    import_row = Row(
        f"registry hashes import, {PROTECTED_ENTRIES:,} CSV lines",
        world.import_protected(),
        asyncio.run(_raw_copy(world.database_url, protected_hashes())),
        "asyncpg COPY of the same rows, no index",
    )
    return [
        HttpTable("Publish gate (issue 5)", rows),
        InProcessTable("Publish gate (issue 5)", [import_row]),
    ]
