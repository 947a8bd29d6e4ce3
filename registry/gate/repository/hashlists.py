"""Perceptual-hash lists (``hash_lists``, ``hash_list_entries``, ``hash_lists_version``).

Entries are 64-bit hashes stored as the signed bigint with the same bits (``hash_to_db``).
Every change to a list or an entry bumps ``hash_lists_version`` (statement triggers), which
is what a process compares with the version of its in-memory index.
"""

from __future__ import annotations

import io
from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import msgspec

from moderation.hashlists import ListAction  # noqa: TC001 - msgspec reads it at runtime

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    import asyncpg

__all__ = [
    "HashListView",
    "ListExport",
    "all_lists",
    "disable_hashes",
    "insert_list",
    "list_view",
    "lists_version",
    "lock_list",
    "merge_import",
    "read_snapshot",
    "stage_import",
]

_VIEW = (
    "SELECT l.name, l.action, l.enabled, l.created_at,"
    " (SELECT count(*) FROM hash_list_entries e WHERE e.list_id = l.list_id AND e.enabled)"
    " AS entries FROM hash_lists l"
)


class HashListView(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    action: ListAction
    enabled: bool
    entries: int
    """Enabled entries."""
    created_at: datetime


class ListExport(msgspec.Struct, kw_only=True, frozen=True):
    """A list as the index loads it: ``entries`` are its enabled entries as CSV (hash as 16
    hex digits, label, source), None for a disabled list."""

    name: str
    action: ListAction
    enabled: bool
    entries: io.BytesIO | None


async def insert_list(
    conn: asyncpg.Connection, *, name: str, action: ListAction, created_by: str
) -> bool:
    """Create the list; False when a list of that name exists."""
    created = await conn.fetchval(
        "INSERT INTO hash_lists (name, action, created_by) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO NOTHING RETURNING true",
        name,
        action,
        created_by,
    )
    return bool(created)


async def list_view(conn: asyncpg.Connection, name: str) -> HashListView | None:
    row = await conn.fetchrow(_VIEW + " WHERE l.name = $1", name)
    return None if row is None else HashListView(**dict(row))


async def all_lists(conn: asyncpg.Connection) -> list[HashListView]:
    rows = await conn.fetch(_VIEW + " ORDER BY l.name")
    return [HashListView(**dict(row)) for row in rows]


async def lock_list(conn: asyncpg.Connection, name: str) -> int | None:
    """The list's id, its row locked until the transaction ends; None when there is none."""
    list_id: int | None = await conn.fetchval(
        "SELECT list_id FROM hash_lists WHERE name = $1 FOR UPDATE", name
    )
    return list_id


async def stage_import(
    conn: asyncpg.Connection, records: Iterable[tuple[int, int, str, str | None]]
) -> None:
    """Stream (line, hash, label, source) records into this transaction's import table."""
    await conn.execute(
        "CREATE TEMP TABLE hash_import (line bigint, hash bigint, label text, source text)"
        " ON COMMIT DROP"
    )
    await conn.copy_records_to_table(
        "hash_import", records=records, columns=("line", "hash", "label", "source")
    )


async def merge_import(conn: asyncpg.Connection, list_id: int) -> tuple[int, int]:
    """Merge the staged records into the (locked) list: (hashes added, hashes updated)."""
    # The last line for a hash wins. Rows go in sorted by hash, which fills the unique index
    # page by page; an anti-join instead of ON CONFLICT avoids a speculative insertion per
    # row. Both are safe because the list's row is locked for this transaction.
    await conn.execute(
        "CREATE TEMP TABLE hash_merge ON COMMIT DROP AS"
        " SELECT DISTINCT ON (hash) hash, label, source FROM hash_import ORDER BY hash, line DESC"
    )
    await conn.execute("ANALYZE hash_merge")
    updated = await conn.execute(
        "UPDATE hash_list_entries e SET label = m.label, source = m.source, enabled = true"
        " FROM hash_merge m WHERE e.list_id = $1 AND e.hash = m.hash",
        list_id,
    )
    added = await conn.execute(
        "INSERT INTO hash_list_entries (list_id, hash, label, source)"
        " SELECT $1::bigint, m.hash, m.label, m.source FROM hash_merge m"
        " WHERE NOT EXISTS (SELECT 1 FROM hash_list_entries e"
        "  WHERE e.list_id = $1 AND e.hash = m.hash)"
        " ORDER BY m.hash",
        list_id,
    )
    await conn.execute("UPDATE hash_lists SET updated_at = now() WHERE list_id = $1", list_id)
    return _count(added), _count(updated)


def _count(status: str) -> int:
    """The row count of a command status ("INSERT 0 5", "UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


async def disable_hashes(conn: asyncpg.Connection, list_id: int, hashes: Sequence[int]) -> int:
    """Disable the list's enabled entries with these (database) hashes; returns how many."""
    count: int = await conn.fetchval(
        "WITH changed AS (UPDATE hash_list_entries SET enabled = false"
        " WHERE list_id = $1 AND hash = ANY($2::bigint[]) AND enabled RETURNING 1)"
        " SELECT count(*) FROM changed",
        list_id,
        list(hashes),
    )
    return count


async def lists_version(conn: asyncpg.Connection) -> int:
    version: int = await conn.fetchval("SELECT version FROM hash_lists_version")
    return version


async def read_snapshot(
    conn: asyncpg.Connection,
    add: Callable[[ListExport], Awaitable[None]],
) -> int:
    """Every list, in one snapshot, and the version that snapshot reflects: ``add`` is
    awaited for each list in creation order, inside the snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version: int = await conn.fetchval("SELECT version FROM hash_lists_version")
        lists = await conn.fetch(
            "SELECT list_id, name, action, enabled FROM hash_lists ORDER BY list_id"
        )
        for entry in lists:
            if not entry["enabled"]:
                await add(
                    ListExport(
                        name=entry["name"], action=entry["action"], enabled=False, entries=None
                    )
                )
                continue
            buffer = io.BytesIO()
            await conn.copy_from_query(
                "SELECT lpad(to_hex(hash), 16, '0'), label, source FROM hash_list_entries"
                " WHERE list_id = $1 AND enabled ORDER BY entry_id",
                entry["list_id"],
                output=buffer,
                format="csv",
            )
            buffer.seek(0)
            await add(
                ListExport(name=entry["name"], action=entry["action"], enabled=True, entries=buffer)
            )
    return version
