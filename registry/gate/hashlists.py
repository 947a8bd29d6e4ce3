"""Perceptual-hash lists: their rows in PostgreSQL and this process's in-memory index.

Bulk imports stream entries into a temporary table with COPY and merge them in one
statement (the last line for a hash wins; a hash already on the list is updated and enabled
again), so a million entries import in seconds. Lists and entries are never deleted, only
disabled, so a past decision's match can always be traced.

Every change to ``hash_lists`` or ``hash_list_entries`` bumps ``hash_lists_version`` (a
statement trigger, whoever writes). ``HashLists.index`` reads that one-row counter on each
gate request and, when it moved, rebuilds the index from a consistent snapshot before
answering, so every service process sees a change on its next request.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import msgspec

from moderation import EntryInput, HashIndex, HashValueInvalid, iter_csv, parse_hash
from moderation.hashlists import ListAction  # noqa: TC001 - msgspec reads it at runtime
from registry.core import db
from registry.gate.errors import HashListExists, HashListNotFound
from registry.gate.repository import hash_to_db

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import asyncpg

log = logging.getLogger(__name__)

__all__ = [
    "HashListView",
    "HashLists",
    "ImportResult",
    "create_list",
    "disable_entries",
    "get_list",
    "import_entries",
    "list_lists",
]

_PROGRESS_EVERY = 50_000
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


class ImportResult(msgspec.Struct, kw_only=True, frozen=True):
    list: str
    received: int
    """Entries read from the input (a hash listed twice counts twice)."""
    added: int
    """Hashes new to the list."""
    updated: int
    """Hashes already on the list: label and source replaced, enabled again."""


async def create_list(
    conn: asyncpg.Connection, *, name: str, action: ListAction, created_by: str
) -> HashListView:
    # The index refuses bad names and actions (hash_value_invalid) as the table's checks do.
    HashIndex().define_list(name, action)
    created = await conn.fetchval(
        "INSERT INTO hash_lists (name, action, created_by) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO NOTHING RETURNING true",
        name,
        action,
        created_by,
    )
    if not created:
        raise HashListExists(f"a hash list named {name!r} exists")
    return await get_list(conn, name)


async def get_list(conn: asyncpg.Connection, name: str) -> HashListView:
    row = await conn.fetchrow(_VIEW + " WHERE l.name = $1", name)
    if row is None:
        raise HashListNotFound(f"no hash list named {name[:64]!r}")
    return HashListView(**dict(row))


async def list_lists(conn: asyncpg.Connection) -> list[HashListView]:
    rows = await conn.fetch(_VIEW + " ORDER BY l.name")
    return [HashListView(**dict(row)) for row in rows]


async def _list_id(conn: asyncpg.Connection, name: str) -> int:
    list_id: int | None = await conn.fetchval(
        "SELECT list_id FROM hash_lists WHERE name = $1 FOR UPDATE", name
    )
    if list_id is None:
        raise HashListNotFound(f"no hash list named {name[:64]!r}")
    return list_id


async def import_entries(
    conn: asyncpg.Connection,
    *,
    list_name: str,
    entries: Iterable[EntryInput],
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Add ``entries`` to ``list_name``; call inside a transaction (all or nothing).

    A bad line of a parsed file (``hash_list_line_invalid``) aborts the whole import.
    """
    list_id = await _list_id(conn, list_name)
    await conn.execute(
        "CREATE TEMP TABLE hash_import (line bigint, hash bigint, label text, source text)"
        " ON COMMIT DROP"
    )
    received = 0

    def records() -> Iterator[tuple[int, int, str, str | None]]:
        nonlocal received
        for received, entry in enumerate(entries, start=1):
            if progress is not None and received % _PROGRESS_EVERY == 0:
                progress(received)
            # Stored trimmed and non-blank, so the index reloads them exactly (as CSV).
            label = entry.label.strip()
            source = entry.source.strip() if entry.source is not None else ""
            if not label:
                raise HashValueInvalid(f"entry {received}: the label is blank")
            yield (received, hash_to_db(entry.hash), label, source or None)

    await conn.copy_records_to_table(
        "hash_import", records=records(), columns=("line", "hash", "label", "source")
    )
    if progress is not None:
        progress(received)
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
    return ImportResult(
        list=list_name, received=received, added=_count(added), updated=_count(updated)
    )


def _count(status: str) -> int:
    """The row count of a command status ("INSERT 0 5", "UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


async def disable_entries(
    conn: asyncpg.Connection, *, list_name: str, hashes: Iterable[str]
) -> int:
    """Disable the enabled entries of ``list_name`` with these hashes (hex); returns how many."""
    list_id = await _list_id(conn, list_name)
    values = [hash_to_db(parse_hash(value)) for value in hashes]
    count: int = await conn.fetchval(
        "WITH changed AS (UPDATE hash_list_entries SET enabled = false"
        " WHERE list_id = $1 AND hash = ANY($2::bigint[]) AND enabled RETURNING 1)"
        " SELECT count(*) FROM changed",
        list_id,
        values,
    )
    return count


class HashLists:
    """This process's in-memory index of every enabled entry, kept at the database's version.

    A rebuild runs as a task of its own on its own connection, and callers wait for it
    shielded: a request that gives up (its step timed out) does not cancel the rebuild the
    next request needs.
    """

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._index = HashIndex()
        self._version: int | None = None
        self._rebuild: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"HashLists(version={self._version}, entries={len(self._index)})"

    async def index(self, conn: asyncpg.Connection) -> HashIndex:
        """The index as of the lists' current version (rebuilt first if they changed)."""
        version = await conn.fetchval("SELECT version FROM hash_lists_version")
        while self._version is None or self._version < version:
            if self._rebuild is None or self._rebuild.done():
                self._rebuild = asyncio.create_task(self._load())
            await asyncio.shield(self._rebuild)
        return self._index

    async def refresh(self) -> None:
        """Load the lists now (at start, so the first request does not wait for it)."""
        await self._load()

    async def watch(self, interval: float) -> None:
        """Rebuild soon after any process changes the lists, ahead of the next request
        (which would otherwise wait for the rebuild; a million entries take seconds)."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with db.acquire(self._pool, wait=self._acquire_timeout) as conn:
                    await self.index(conn)
            except Exception as exc:  # noqa: BLE001 - the next request retries and fails closed
                log.warning("hash lists not refreshed: %s", type(exc).__name__)

    async def _load(self) -> None:
        async with db.acquire(self._pool, wait=self._acquire_timeout) as conn:
            self._index, self._version = await _load(conn)


async def _load(conn: asyncpg.Connection) -> tuple[HashIndex, int]:
    """A fresh index and the version it reflects, read from one snapshot.

    Entries come out as CSV (``COPY``, the hash as 16 hex digits) and go into the index
    through the import parser in a worker thread: much cheaper than a million records.
    """
    index = HashIndex()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version: int = await conn.fetchval("SELECT version FROM hash_lists_version")
        lists = await conn.fetch(
            "SELECT list_id, name, action, enabled FROM hash_lists ORDER BY list_id"
        )
        for entry in lists:
            index.define_list(entry["name"], entry["action"], enabled=entry["enabled"])
            if not entry["enabled"]:
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
            await asyncio.to_thread(_add_csv, index, entry["name"], buffer)
    return index, version


def _add_csv(index: HashIndex, name: str, buffer: io.BytesIO) -> None:
    lines = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
    index.add_many(name, iter_csv(lines))
