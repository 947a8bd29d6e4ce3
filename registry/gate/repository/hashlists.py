"""Protected-hash lists (``hash_lists``, ``hash_list_entries``, ``hash_lists_version``).

A hash is stored as its big-endian bytes, 8 for pHash and 32 for PDQ (the list's signal).
Every change to a list or an entry bumps ``hash_lists_version`` (statement triggers), which
is what a process compares with the version of its in-memory index, and stamps the entry
with the writing transaction (``changed_xid``), which is how that process reads only what
changed since it last looked (``read_changes``).
"""

from __future__ import annotations

import io
import uuid  # noqa: TC003 - msgspec reads annotations at runtime
from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from moderation import HashEntry, IndexRows, ListSpec
from moderation.hashlists import ListAction, ListScope  # noqa: TC001 - msgspec reads them
from moderation.signals import SIGNAL_BITS, SIGNALS, Signal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence

    import asyncpg

__all__ = [
    "Changes",
    "ExportRow",
    "HashListView",
    "ListRow",
    "StagedEntry",
    "all_lists",
    "disable_hashes",
    "entry_details",
    "export_batches",
    "find_list",
    "insert_list",
    "list_view",
    "lists_version",
    "lock_list",
    "merge_import",
    "read_changes",
    "stage_import",
]

_VIEW = (
    "SELECT l.name, l.signal, l.action, l.enabled, l.unreviewed_distance, l.tenant, l.scope,"
    " l.created_at, (SELECT count(*) FROM hash_list_entries e"
    "  WHERE e.list_id = l.list_id AND e.enabled) AS entries FROM hash_lists l"
    # $1 is the reader's tenant; NULL (the operator's command line) reads every tenant's.
    " WHERE ($1::text IS NULL OR l.tenant = $1)"
)
# PostgreSQL's binary COPY: an 11-byte signature, 32-bit flags and header-extension length.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = len(_COPY_SIGNATURE) + 8
_COPY_TRAILER = 2


class HashListView(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    signal: Signal
    action: ListAction
    enabled: bool
    unreviewed_distance: int | None
    """Unreviewed entries match only this close (None: as reviewed ones)."""
    tenant: str
    """The tenant whose admins manage the list."""
    scope: ListScope
    """``global``: matches every tenant's images; ``tenant``: its own tenant's only."""
    entries: int
    """Enabled entries."""
    created_at: datetime


class ListRow(msgspec.Struct, kw_only=True, frozen=True):
    list_id: int
    signal: Signal


class StagedEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One entry to merge into a list; ``line`` orders duplicates (the last one wins)."""

    line: int
    hash: bytes
    label: str
    source: str | None = None
    reviewed: bool = True
    quality: int | None = None
    image_id: uuid.UUID | None = None
    crop: str | None = None


class ExportRow(msgspec.Struct, kw_only=True, frozen=True):
    hash: bytes
    label: str
    source: str | None
    reviewed: bool


class Changes(msgspec.Struct, kw_only=True, frozen=True):
    """What a process must apply to its index: every list, the entries written since its
    horizon (all of them on a first read), the version and the next horizon."""

    version: int
    horizon: int
    lists: list[ListSpec]
    rows: dict[Signal, IndexRows]


async def insert_list(
    conn: asyncpg.Connection,
    *,
    name: str,
    signal: Signal,
    action: ListAction,
    unreviewed_distance: int | None,
    tenant: str,
    scope: ListScope,
    created_by: str,
) -> bool:
    """Create the list; False when a list of that name exists (in any tenant: names are
    what decisions and reviewers see, so they are unique)."""
    created = await conn.fetchval(
        "INSERT INTO hash_lists"
        " (name, signal, action, unreviewed_distance, tenant, scope, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING true",
        name,
        signal,
        action,
        unreviewed_distance,
        tenant,
        scope,
        created_by,
    )
    return bool(created)


async def list_view(conn: asyncpg.Connection, name: str, tenant: str | None) -> HashListView | None:
    """The list named ``name`` if ``tenant`` owns it (None: whoever owns it)."""
    row = await conn.fetchrow(_VIEW + " AND l.name = $2", tenant, name)
    return None if row is None else HashListView(**dict(row))


async def all_lists(conn: asyncpg.Connection, tenant: str | None) -> list[HashListView]:
    rows = await conn.fetch(_VIEW + " ORDER BY l.name", tenant)
    return [HashListView(**dict(row)) for row in rows]


async def lock_list(conn: asyncpg.Connection, name: str, tenant: str | None) -> ListRow | None:
    """The list's id and signal, its row locked until the transaction ends."""
    row = await conn.fetchrow(
        "SELECT list_id, signal FROM hash_lists WHERE name = $1"
        " AND ($2::text IS NULL OR tenant = $2) FOR UPDATE",
        name,
        tenant,
    )
    return None if row is None else ListRow(list_id=row["list_id"], signal=row["signal"])


async def find_list(conn: asyncpg.Connection, name: str, tenant: str | None) -> ListRow | None:
    """The list's id and signal, unlocked (for readers)."""
    row = await conn.fetchrow(
        "SELECT list_id, signal FROM hash_lists WHERE name = $1"
        " AND ($2::text IS NULL OR tenant = $2)",
        name,
        tenant,
    )
    return None if row is None else ListRow(list_id=row["list_id"], signal=row["signal"])


async def stage_import(conn: asyncpg.Connection, entries: Iterable[StagedEntry]) -> None:
    """Stream entries into this transaction's import table."""
    await conn.execute(
        "CREATE TEMP TABLE hash_import (line bigint, hash bytea, label text, source text,"
        " reviewed boolean, quality smallint, image_id uuid, crop text) ON COMMIT DROP"
    )
    await conn.copy_records_to_table(
        "hash_import",
        records=(
            (e.line, e.hash, e.label, e.source, e.reviewed, e.quality, e.image_id, e.crop)
            for e in entries
        ),
        columns=("line", "hash", "label", "source", "reviewed", "quality", "image_id", "crop"),
    )


async def merge_import(conn: asyncpg.Connection, list_id: int) -> tuple[int, int]:
    """Merge the staged entries into the (locked) list: (hashes added, hashes updated)."""
    # The last line for a hash wins. Rows go in sorted by hash, which fills the unique index
    # page by page; an anti-join instead of ON CONFLICT avoids a speculative insertion per
    # row. Both are safe because the list's row is locked for this transaction.
    await conn.execute(
        "CREATE TEMP TABLE hash_merge ON COMMIT DROP AS SELECT DISTINCT ON (hash) hash, label,"
        " source, reviewed, quality, image_id, crop FROM hash_import ORDER BY hash, line DESC"
    )
    await conn.execute("ANALYZE hash_merge")
    updated = await conn.execute(
        "UPDATE hash_list_entries e SET label = m.label, source = m.source,"
        " reviewed = m.reviewed, quality = m.quality, image_id = m.image_id, crop = m.crop,"
        " enabled = true FROM hash_merge m WHERE e.list_id = $1 AND e.hash = m.hash",
        list_id,
    )
    added = await conn.execute(
        "INSERT INTO hash_list_entries"
        " (list_id, hash, label, source, reviewed, quality, image_id, crop)"
        " SELECT $1::bigint, m.hash, m.label, m.source, m.reviewed, m.quality, m.image_id,"
        " m.crop FROM hash_merge m WHERE NOT EXISTS (SELECT 1 FROM hash_list_entries e"
        "  WHERE e.list_id = $1 AND e.hash = m.hash)"
        " ORDER BY m.hash",
        list_id,
    )
    await conn.execute("UPDATE hash_lists SET updated_at = now() WHERE list_id = $1", list_id)
    return _count(added), _count(updated)


def _count(status: str) -> int:
    """The row count of a command status ("INSERT 0 5", "UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


async def disable_hashes(conn: asyncpg.Connection, list_id: int, hashes: Sequence[bytes]) -> int:
    """Disable the list's enabled entries with these hashes; returns how many."""
    count: int = await conn.fetchval(
        "WITH changed AS (UPDATE hash_list_entries SET enabled = false"
        " WHERE list_id = $1 AND hash = ANY($2::bytea[]) AND enabled RETURNING 1)"
        " SELECT count(*) FROM changed",
        list_id,
        list(hashes),
    )
    return count


async def lists_version(conn: asyncpg.Connection) -> int:
    version: int = await conn.fetchval("SELECT version FROM hash_lists_version")
    return version


async def read_changes(conn: asyncpg.Connection, horizon: int | None) -> Changes:
    """Every list and the entries written at or after transaction ``horizon`` (every enabled
    entry when it is None), in one snapshot, with the version and horizon it reflects.

    The next horizon is the snapshot's oldest running transaction: everything older was
    committed, and so read, by now; what runs still will be read next time.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        snapshot = await conn.fetchrow(
            "SELECT (SELECT version FROM hash_lists_version) AS version,"
            " pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon"
        )
        lists = await conn.fetch(
            "SELECT list_id, name, signal, action, enabled, unreviewed_distance, tenant, scope"
            " FROM hash_lists ORDER BY list_id"
        )
        rows = {signal: await _entry_rows(conn, signal, horizon) for signal in SIGNALS}
    if snapshot is None:  # a SELECT without FROM returns its one row
        raise RuntimeError("no snapshot row")
    return Changes(
        version=snapshot["version"],
        horizon=snapshot["horizon"],
        lists=[ListSpec(**dict(row)) for row in lists],
        rows=rows,
    )


_ROWS = (
    "SELECT e.entry_id, e.list_id, e.hash, (e.enabled::int | (e.reviewed::int << 1))::int2"
    " FROM hash_list_entries e JOIN hash_lists l USING (list_id)"
    " WHERE l.signal = $1 AND length(e.hash) = $2"
)
_ALL_ROWS = _ROWS + " AND e.enabled ORDER BY e.entry_id"
_CHANGED_ROWS = _ROWS + " AND e.changed_xid >= $3 ORDER BY e.entry_id"


async def _entry_rows(conn: asyncpg.Connection, signal: Signal, horizon: int | None) -> IndexRows:
    width = SIGNAL_BITS[signal] // 8
    buffer = io.BytesIO()
    # Fixed-width columns in binary COPY: every tuple has the same layout, so numpy reads
    # the lot in one pass (a million PDQ entries in about 70 MB and a fraction of a second,
    # where a million records would take seconds and several times the memory).
    if horizon is None:
        await conn.copy_from_query(_ALL_ROWS, signal, width, output=buffer, format="binary")
    else:
        await conn.copy_from_query(
            _CHANGED_ROWS, signal, width, horizon, output=buffer, format="binary"
        )
    return _parse_rows(buffer.getvalue(), width)


def _parse_rows(data: bytes, width: int) -> IndexRows:
    layout = np.dtype(
        [
            ("fields", ">i2"),
            ("id_length", ">i4"),
            ("entry_id", ">i8"),
            ("list_length", ">i4"),
            ("list_id", ">i8"),
            ("hash_length", ">i4"),
            ("hash", "u1", (width,)),
            ("flags_length", ">i4"),
            ("flags", ">i2"),
        ]
    )
    if not data.startswith(_COPY_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(data[_COPY_HEADER - 4 : _COPY_HEADER])
    body = data[_COPY_HEADER + extension : len(data) - _COPY_TRAILER]
    tuples = np.frombuffer(body, dtype=layout)
    if len(tuples) and (
        (tuples["fields"] != 4).any()  # noqa: PLR2004 - four columns selected
        or (tuples["hash_length"] != width).any()
    ):
        raise ValueError("unexpected binary COPY layout")
    flags = tuples["flags"]
    return IndexRows(
        entry_id=tuples["entry_id"].astype(np.int64),
        list_id=tuples["list_id"].astype(np.int64),
        hashes=tuples["hash"],
        enabled=(flags & 1).astype(np.bool_),
        reviewed=(flags & 2).astype(np.bool_),
    )


async def entry_details(conn: asyncpg.Connection, entry_ids: Sequence[int]) -> dict[int, HashEntry]:
    """Label, source and crop of these entries (the few that matched)."""
    rows = await conn.fetch(
        "SELECT entry_id, hash, label, source, crop FROM hash_list_entries"
        " WHERE entry_id = ANY($1::bigint[])",
        list(entry_ids),
    )
    return {row["entry_id"]: HashEntry(**dict(row)) for row in rows}


async def export_batches(
    conn: asyncpg.Connection, list_id: int, size: int
) -> AsyncIterator[list[ExportRow]]:
    """The list's enabled entries in entry order, ``size`` at a time, from one read-only
    snapshot (a cursor: a million entries are never in memory at once)."""
    async with conn.transaction(readonly=True):
        cursor = await conn.cursor(
            "SELECT hash, label, source, reviewed FROM hash_list_entries"
            " WHERE list_id = $1 AND enabled ORDER BY entry_id",
            list_id,
        )
        while rows := await cursor.fetch(size):
            yield [
                ExportRow(
                    hash=r["hash"], label=r["label"], source=r["source"], reviewed=r["reviewed"]
                )
                for r in rows
            ]
