"""Hash-list rows (issue 14): matching, memory, updates, bulk import, first load, lookup.

Run alone with ``python -m bench bench_hashlists``. Every row puts our code next to a floor
doing the same work in the same run:

- in-process, ``moderation.HashIndex`` over 1,000,000 PDQ and 1,000,000 pHash entries next
  to the plain numpy scan (XOR and ``np.bitwise_count`` over whole word columns, no
  blocking, no prefilter) and, when ``faiss`` is importable, FAISS's ``IndexBinaryFlat``
  (exhaustive, one thread, as our scan is);
- bulk import of 1,000,000 PDQ hashes through ``registry.gate.commands.import_file`` into a
  real database, next to parsing the same file and one COPY into a table with a unique index
  on the hash; the index's first load (``HashLists.refresh``) next to the binary COPY of the
  same columns read into numpy;
- over HTTP (wrk), ``POST /v1/hashes/lookup`` with one PDQ hash at 1,000,000 entries, at 1
  and at 16 connections, next to the floor's route (``bench.floor_server``).

BENCH_HASHLISTS_10M=1 adds the match rows at 10,000,000 PDQ entries (about 450 MB for the
index, about 320 MB each for the raw hashes, the numpy floor's columns and FAISS's copy;
about 75 s more).
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
import importlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import numpy as np

import keys
from bench.context import HttpTable, InProcessTable, Skipped
from bench.harness import Row, Stats, once, timed
from bench.load import Request, check, compare, print_http_table
from moderation import HashIndex, default_policy
from moderation.hashlists import IndexRows, ListSpec
from moderation.signals import SIGNAL_BITS
from registry.compose import build_services, stop
from registry.core.settings import Settings as ServiceSettings
from registry.gate import HashLists, create_list
from registry.gate.commands import import_file

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

    from bench.context import Bench, Table
    from bench.harness import Process
    from bench.load import HttpRow, Settings
    from bench.world import World
    from moderation.signals import Signal


def _faiss() -> Any:
    """The faiss module if it is installed (it is not in the lock: docs/benchmarks.md)."""
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


FAISS: Any = _faiss()

ENTRIES = 1_000_000
LARGE = 10_000_000
QUERIES = 8  # an image's eight flips and rotations
RUNS = 200
LARGE_RUNS = 20
DELTA = 1_000
LIST_NAME = "bench-pdq"
LOOKUP_PATH = "/v1/hashes/lookup"
BANDS = default_policy().hashes
PDQ_DISTANCE = BANDS.bands("pdq")[1]
PHASH_DISTANCE = BANDS.bands("phash")[1]
NUMPY_FLOOR = "numpy: XOR + bitwise_count over whole columns"
FAISS_FLOOR = "faiss IndexBinaryFlat.range_search, 1 thread"


@dataclass
class MedianTable(InProcessTable):
    """An in-process table by median and p99 (the issue's figures), with notes under it."""

    notes: Sequence[str] = field(default_factory=list)

    def show(self, _: Settings) -> None:
        print(f"\n## {self.title} (in-process, one call at a time)\n")
        print(
            "| benchmark | ours median | ours p99 | runs | floor (same run) | floor median "
            "| floor p99 | median ours/floor |"
        )
        print("|---|---:|---:|---:|---|---:|---:|---:|")
        for r in self.rows:
            floor = r.raw
            ratio = f"{r.ours.p50_us / floor.p50_us:.2f}x" if floor and floor.p50_us else "-"
            print(
                f"| {r.name} | {_us(r.ours.p50_us)} | {_us(r.ours.p99_us)} | {r.ours.n} | "
                f"{r.raw_name or '-'} | {_us(floor.p50_us) if floor else '-'} | "
                f"{_us(floor.p99_us) if floor else '-'} | {ratio} |"
            )
        for note in self.notes:
            print(f"\n{note}")


@dataclass
class HttpAt(HttpTable):
    """An HTTP table measured at a connection count of its own."""

    connections: int = 16
    notes: Sequence[str] = field(default_factory=list)

    def show(self, settings: Settings) -> None:
        print_http_table(
            self.title, self.rows, dataclasses.replace(settings, connections=self.connections)
        )
        for note in self.notes:
            print(f"\n{note}")


def _us(value: float) -> str:
    return f"{value / 1000:,.2f} ms" if value >= 1000 else f"{value:,.0f} µs"


def _settled_rss() -> int:
    """The resident set once freed memory is back with the system: glibc keeps freed heap
    pages (numpy's temporaries of a load among them) until asked to trim."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss()


def _rss() -> int:
    """This process's resident set, in bytes."""
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def random_hashes(signal: Signal, count: int, seed: int) -> NDArray[np.uint8]:
    width = SIGNAL_BITS[signal] // 8
    return np.random.default_rng(seed).integers(0, 256, size=(count, width), dtype=np.uint8)


def index_rows(hashes: NDArray[np.uint8], first_id: int, list_id: int) -> IndexRows:
    count = len(hashes)
    return IndexRows(
        entry_id=np.arange(first_id, first_id + count, dtype=np.int64),
        list_id=np.full(count, list_id, dtype=np.int64),
        hashes=hashes,
        enabled=np.ones(count, dtype=np.bool_),
        reviewed=np.ones(count, dtype=np.bool_),
    )


def image_queries(hashes: NDArray[np.uint8], seed: int) -> list[bytes]:
    """An image's eight hashes: one a few bits from a listed entry, seven unrelated."""
    rng = np.random.default_rng(seed)
    near = hashes[len(hashes) // 2].copy()
    near[0] ^= 0b101  # two bits off, as a re-encoded copy would be
    others = rng.integers(0, 256, size=(QUERIES - 1, hashes.shape[1]), dtype=np.uint8)
    return [near.tobytes(), *(bytes(row) for row in others)]


class NumpyScan:
    """The floor: the hashes as 64-bit word columns, each query scanned over whole columns."""

    def __init__(self, hashes: NDArray[np.uint8]) -> None:
        words = _words(hashes)
        self.columns = [np.ascontiguousarray(words[:, k]) for k in range(words.shape[1])]

    def match(self, queries: Sequence[bytes], max_distance: int) -> list[NDArray[np.intp]]:
        found = []
        matrix = np.frombuffer(b"".join(queries), dtype=np.uint8).reshape(len(queries), -1)
        for query in _words(matrix):
            distance = np.bitwise_count(self.columns[0] ^ query[0])
            for k in range(1, len(self.columns)):
                distance += np.bitwise_count(self.columns[k] ^ query[k])
            found.append(np.flatnonzero(distance <= max_distance))
        return found


def _words(hashes: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """Rows of big-endian hash bytes as rows of native 64-bit words."""
    raw = np.ascontiguousarray(hashes).tobytes()
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(hashes), -1)


def faiss_match(hashes: NDArray[np.uint8]) -> Callable[[Sequence[bytes], int], object] | None:
    """FAISS's exhaustive binary index over the same hashes (None without faiss)."""
    if FAISS is None:
        return None
    FAISS.omp_set_num_threads(1)  # our scan runs on one core; so does this floor
    index = FAISS.IndexBinaryFlat(hashes.shape[1] * 8)
    index.add(np.ascontiguousarray(hashes))

    def match(queries: Sequence[bytes], max_distance: int) -> object:
        matrix = np.frombuffer(b"".join(queries), dtype=np.uint8).reshape(len(queries), -1)
        # range_search keeps distances strictly below its radius.
        return index.range_search(matrix, max_distance + 1)

    return match


def run(bench: Bench) -> list[Table]:
    tables: list[Table] = [_index_table()]
    if os.environ.get("BENCH_HASHLISTS_10M"):
        tables.append(_large_table())
    tables += _database_tables(bench)
    return tables


# In-process: the index.


def _index_table() -> MedianTable:
    pdq = random_hashes("pdq", ENTRIES, seed=14)
    phash = random_hashes("phash", ENTRIES, seed=15)
    index = HashIndex()
    index.set_lists(
        [
            ListSpec(list_id=1, name="bench-pdq", signal="pdq", action="block"),
            ListSpec(list_id=2, name="bench-phash", signal="phash", action="block"),
        ]
    )
    before = _settled_rss()
    load = once(lambda: index.upsert("pdq", index_rows(pdq, 1, 1)))
    grown = _rss() - before
    kept = _settled_rss() - before
    held = index.nbytes("pdq")
    index.upsert("phash", index_rows(phash, ENTRIES + 1, 2))
    pdq_queries = image_queries(pdq, seed=16)
    phash_queries = image_queries(phash, seed=17)
    pdq_floor, phash_floor = NumpyScan(pdq), NumpyScan(phash)
    pdq_faiss, phash_faiss = faiss_match(pdq), faiss_match(phash)
    if not index.match("pdq", pdq_queries, PDQ_DISTANCE):
        raise RuntimeError("the near query hash matched nothing: the rows would time a miss")

    rows: list[Row] = []

    def versus(
        name: str,
        ours: Callable[[], object],
        numpy_floor: Callable[[], object],
        faiss_floor: Callable[[], object] | None,
    ) -> None:
        measured = timed(ours, RUNS)
        rows.append(Row(name, measured, timed(numpy_floor, RUNS), NUMPY_FLOOR))
        if faiss_floor is not None:
            rows.append(Row(name, measured, timed(faiss_floor, RUNS), FAISS_FLOOR))

    def both(
        signal: Signal, queries: list[bytes], floor: NumpyScan, fast: Any, distance: int
    ) -> None:
        what = f"1 image ({len(queries)} hashes)" if len(queries) > 1 else "1 hash"
        versus(
            f"match {what} vs {ENTRIES:,} {signal.upper()} (<= {distance} bits)",
            lambda: index.match(signal, queries, distance),
            lambda: floor.match(queries, distance),
            (lambda: fast(queries, distance)) if fast is not None else None,
        )

    both("pdq", pdq_queries, pdq_floor, pdq_faiss, PDQ_DISTANCE)
    both("phash", phash_queries, phash_floor, phash_faiss, PHASH_DISTANCE)
    both("pdq", pdq_queries[:1], pdq_floor, pdq_faiss, PDQ_DISTANCE)

    rows += _upsert_rows(index, pdq)
    rows.append(
        Row(
            f"first load: upsert {ENTRIES:,} PDQ rows into an empty index",
            load,
            once(lambda: NumpyScan(pdq)),
            "numpy: the hashes into word columns",
        )
    )
    notes = [
        (
            f"Memory, {ENTRIES:,} PDQ entries (goal <= 60 MB): index.nbytes('pdq') "
            f"{held / 1e6:.1f} MB after the first load; process RSS growth over that load "
            f"{grown / 1e6:.1f} MB, {kept / 1e6:.1f} MB once the allocator has handed back "
            f"the load's freed scratch (malloc_trim); the bare hashes are "
            f"{pdq.nbytes / 1e6:.1f} MB."
        ),
        (
            f"Distances: the policy's review bands, {PDQ_DISTANCE} bits for PDQ and "
            f"{PHASH_DISTANCE} for pHash. One query hash sits 2 bits from a listed entry, the "
            "others are unrelated to every entry."
        ),
    ]
    if FAISS is None:
        notes.append("faiss is not installed: the FAISS rows are left out.")
    return MedianTable(f"Hash lists (issue 14): {ENTRIES:,} PDQ + {ENTRIES:,} pHash", rows, notes)


def _upsert_rows(index: HashIndex, pdq: NDArray[np.uint8]) -> list[Row]:
    """A delta of DELTA changed entries (a disable, a review), then DELTA new ones."""
    rng = np.random.default_rng(18)
    changed_ids = np.sort(rng.choice(ENTRIES, size=DELTA, replace=False)) + 1
    changed = IndexRows(
        entry_id=changed_ids.astype(np.int64),
        list_id=np.ones(DELTA, dtype=np.int64),
        hashes=pdq[changed_ids - 1],
        enabled=rng.random(DELTA) < 0.5,  # half disabled, half enabled
        reviewed=np.ones(DELTA, dtype=np.bool_),
    )
    # The floor: find each id in the sorted id column and write its flags and words there.
    ids = np.arange(1, ENTRIES + 1, dtype=np.int64)
    flags = np.ones(ENTRIES, dtype=np.uint8)
    columns = NumpyScan(pdq).columns
    delta_words = _words(changed.hashes)

    def floor_changed() -> None:
        at = np.searchsorted(ids, changed.entry_id)
        flags[at] = changed.enabled.astype(np.uint8) | (changed.reviewed.astype(np.uint8) << 1)
        for k, column in enumerate(columns):
            column[at] = delta_words[:, k]

    rows = [
        Row(
            f"upsert a delta of {DELTA:,} changed entries into {ENTRIES:,} PDQ",
            timed(lambda: index.upsert("pdq", changed), 50, warmup=5),
            timed(floor_changed, 50, warmup=5),
            "numpy: searchsorted + scatter into the columns",
        )
    ]
    fresh = random_hashes("pdq", DELTA, seed=19)
    fresh_words = _words(fresh)
    first_new = 2 * ENTRIES + 1

    def floor_grow() -> None:
        for k, column in enumerate(columns):
            np.concatenate([column, fresh_words[:, k]])

    # The first append after a first load grows the arrays (sized exactly at that load).
    rows.append(
        Row(
            f"upsert {DELTA:,} new entries into {ENTRIES:,} PDQ (the arrays grow)",
            once(lambda: index.upsert("pdq", index_rows(fresh, first_new, 1))),
            once(floor_grow),
            "numpy: concatenate the word columns",
        )
    )
    return rows


def _large_table() -> MedianTable:
    hashes = random_hashes("pdq", LARGE, seed=20)
    index = HashIndex()
    index.set_lists([ListSpec(list_id=1, name="bench-pdq", signal="pdq", action="block")])
    before = _settled_rss()
    load = once(lambda: index.upsert("pdq", index_rows(hashes, 1, 1)))
    grown = _settled_rss() - before
    queries = image_queries(hashes, seed=21)
    built: list[NumpyScan] = []
    floor_load = once(lambda: built.append(NumpyScan(hashes)))
    floor = built[0]
    rows = [
        Row(
            f"first load: upsert {LARGE:,} PDQ rows into an empty index",
            load,
            floor_load,
            "numpy: the hashes into word columns",
        )
    ]
    fast = faiss_match(hashes)
    for count in (QUERIES, 1):
        chosen = queries[:count]
        what = f"1 image ({count} hashes)" if count > 1 else "1 hash"
        name = f"match {what} vs {LARGE:,} PDQ (<= {PDQ_DISTANCE} bits)"
        ours = timed(partial(index.match, "pdq", chosen, PDQ_DISTANCE), LARGE_RUNS, warmup=2)
        numpy_floor = timed(partial(floor.match, chosen, PDQ_DISTANCE), LARGE_RUNS, warmup=2)
        rows.append(Row(name, ours, numpy_floor, NUMPY_FLOOR))
        if fast is not None:
            faiss_floor = timed(partial(fast, chosen, PDQ_DISTANCE), LARGE_RUNS, warmup=2)
            rows.append(Row(name, ours, faiss_floor, FAISS_FLOOR))
    notes = [
        (
            f"Memory, {LARGE:,} PDQ entries: index.nbytes('pdq') "
            f"{index.nbytes('pdq') / 1e6:,.0f} MB; process RSS growth over the first load "
            f"{grown / 1e6:,.0f} MB (after malloc_trim)."
        )
    ]
    return MedianTable(f"Hash lists (issue 14): {LARGE:,} PDQ (BENCH_HASHLISTS_10M)", rows, notes)


# The database: bulk import and first load; then the lookup over HTTP.


def _database_tables(bench: Bench) -> list[Table]:
    world: World | None = None
    if bench.http:
        try:
            world = bench.world()
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"(the service did not start, so the lookup rows are left out: {exc})")
    database_url = world.database_url if world is not None else bench.postgres().database()
    pdq = random_hashes("pdq", ENTRIES, seed=22)
    with tempfile.TemporaryDirectory(prefix="bench-hashlists-") as tmp:
        path = Path(tmp) / "pdq.csv"
        with path.open("w") as out:
            out.write("hash,label,source\n")
            out.writelines(f"{row.tobytes().hex()},entry-{i},bench\n" for i, row in enumerate(pdq))
        ours_import, ours_load, floor_import, floor_load, loaded = asyncio.run(
            _import_and_load(database_url, path, world)
        )
    table = MedianTable(
        f"Hash lists (issue 14): bulk import and first load, {ENTRIES:,} PDQ",
        [
            Row(
                f"import_file, {ENTRIES:,}-line CSV (64-hex PDQ, label, source)",
                ours_import,
                floor_import,
                "split + bytes.fromhex per line, one COPY into a table with a unique index",
            ),
            Row(
                f"HashLists.refresh: first load, {loaded:,} entries (these {ENTRIES:,} PDQ "
                "and any list an earlier section left)",
                ours_load,
                floor_load,
                "binary COPY of the same rows and columns + np.frombuffer",
            ),
        ],
        [
            (
                "Goal: the import <= 30 s. It runs in one transaction as `registry hashes "
                "import` does (CSV parse, checks, COPY into a staging table, merge into the "
                f"list's unique index); the list is new, so all {ENTRIES:,} are added."
            )
        ],
    )
    tables: list[Table] = [table]
    if not bench.http:
        tables.append(bench.skipped("Hash lists (issue 14): POST /v1/hashes/lookup"))
    elif world is not None:
        tables += _lookup_tables(bench, world, pdq)
    return tables


async def _import_and_load(
    database_url: str, path: Path, world: World | None
) -> tuple[Stats, Stats, Stats, Stats, int]:
    with tempfile.TemporaryDirectory(prefix="bench-hashlists-data-") as data_dir:
        settings = ServiceSettings(
            database_url=database_url,
            data_dir=Path(data_dir),
            master_key=world.master_key if world is not None else _master_key(),
            log_json=False,
        )
        # As the operator's commands do: no statement timeout on a million-line import.
        services = await build_services(settings, bounded=False)
        try:
            floor = services.gate.policy.hashes.pdq.quality_floor
            async with services.unit_of_work("cli") as uow:
                await create_list(uow, name=LIST_NAME, signal="pdq", action="block", tenant="bench")
            started = time.perf_counter()
            async with services.unit_of_work("cli") as uow:
                await import_file(
                    uow, list_name=LIST_NAME, path=path, fmt=None, quality_floor=floor
                )
            ours_import = Stats.of([time.perf_counter() - started])
            fresh = HashLists(services.pool, acquire_timeout=settings.db_acquire_timeout)
            started = time.perf_counter()
            await fresh.refresh()
            ours_load = Stats.of([time.perf_counter() - started])
            async with services.connection() as conn:
                loaded = len(await fresh.index(conn))
        finally:
            await stop(services)
    conn = await asyncpg.connect(database_url)
    try:
        floor_import = await _floor_import(conn, path)
        floor_load = await _floor_load(conn)
    finally:
        await conn.close()
    return ours_import, ours_load, floor_import, floor_load, loaded


def _master_key() -> str:
    return keys.MasterKey.generate().to_text()


async def _floor_import(conn: asyncpg.Connection, path: Path) -> Stats:
    await conn.execute(
        "CREATE TEMP TABLE floor_entries (hash bytea NOT NULL UNIQUE, label text NOT NULL,"
        " source text)"
    )

    def records() -> Any:
        with path.open("rb") as lines:
            next(lines)
            for line in lines:
                value, label, source = line.rstrip(b"\n").split(b",")
                yield bytes.fromhex(value.decode()), label.decode(), source.decode()

    started = time.perf_counter()
    async with conn.transaction():
        await conn.copy_records_to_table(
            "floor_entries", records=records(), columns=("hash", "label", "source")
        )
    return Stats.of([time.perf_counter() - started])


async def _floor_load(conn: asyncpg.Connection) -> Stats:
    """Every entry of the database (both widths: the gate's section may have left a pHash
    list), as the index loads them, into word columns."""
    started = time.perf_counter()
    for width in (32, 8):
        buffer = io.BytesIO()
        await conn.copy_from_query(
            "SELECT entry_id, list_id, hash, enabled, reviewed FROM hash_list_entries"
            " WHERE length(hash) = $1",
            width,
            output=buffer,
            format="binary",
        )
        layout = np.dtype(
            [
                ("fields", ">i2"),
                ("id_length", ">i4"),
                ("entry_id", ">i8"),
                ("list_length", ">i4"),
                ("list_id", ">i8"),
                ("hash_length", ">i4"),
                ("hash", "u1", (width,)),
                ("enabled_length", ">i4"),
                ("enabled", "u1"),
                ("reviewed_length", ">i4"),
                ("reviewed", "u1"),
            ]
        )
        data = buffer.getvalue()
        header = 19 + int.from_bytes(data[15:19])  # signature, flags, extension length
        tuples = np.frombuffer(data[header:-2], dtype=layout)
        if len(tuples):
            _words(tuples["hash"])
    return Stats.of([time.perf_counter() - started])


def _lookup_tables(bench: Bench, world: World, pdq: NDArray[np.uint8]) -> list[Table]:
    body = json.dumps({"signal": "pdq", "hash": pdq[len(pdq) // 3].tobytes().hex()}).encode()
    request = Request(
        LOOKUP_PATH,
        method="POST",
        body=world.body("hash-lookup.json", body),
        content_type="application/json",
        api_key=world.publisher_key,
    )

    def found(answer: bytes) -> bool:
        return LIST_NAME in answer.decode()

    title = f"Hash lists (issue 14): POST {LOOKUP_PATH}, {ENTRIES:,} PDQ"
    try:
        for target in world.both(request):
            check(target.base_url, request, found)
    except RuntimeError as exc:
        return [Skipped(title, f"the lookup did not answer as expected ({exc})")]
    floor = (
        "API-key lookup by hash; JSON body (msgspec) and bytes.fromhex; numpy scan of the "
        f"{ENTRIES:,} PDQ hashes (whole columns, loaded once); one SELECT of the matched entries"
    )
    name = f"POST {LOOKUP_PATH}, 1 PDQ hash (on the list), {ENTRIES:,} PDQ"
    # Both have answered, so both hold the list in memory now.
    memory = (
        f"Resident memory with the list loaded: the service {_rss_of(world.service) / 1e6:,.0f}"
        f" MB, the floor {_rss_of(world.floor) / 1e6:,.0f} MB (1 worker each)."
    )
    tables: list[HttpAt] = []
    for connections in (1, 16):
        settings = dataclasses.replace(bench.settings, connections=connections)
        row: HttpRow = compare(name, floor, *world.both(request), settings)
        tables.append(HttpAt(f"{title}, {connections} connection(s)", [row], connections))
    tables[-1].notes = [memory]
    return list(tables)


def _rss_of(process: Process) -> int:
    """The resident set of a server process, in bytes."""
    assert process.proc is not None
    statm = Path(f"/proc/{process.proc.pid}/statm").read_text()
    return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
