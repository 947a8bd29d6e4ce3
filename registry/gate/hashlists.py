"""Perceptual-hash lists: their rows in PostgreSQL (through ``registry.gate.repository``) and
this process's in-memory index.

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
from typing import TYPE_CHECKING

import msgspec

from moderation import EntryInput, HashIndex, HashValueInvalid, iter_csv, parse_hash
from registry.core import db
from registry.gate import repository
from registry.gate.errors import HashListExists, HashListNotFound
from registry.gate.repository import HashListView, hash_to_db

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import asyncpg

    from moderation.hashlists import ListAction
    from registry.core.uow import UnitOfWork
    from registry.gate.repository import ListExport

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
    if not await repository.insert_list(conn, name=name, action=action, created_by=created_by):
        raise HashListExists(f"a hash list named {name!r} exists")
    return await get_list(conn, name)


async def get_list(conn: asyncpg.Connection, name: str) -> HashListView:
    view = await repository.list_view(conn, name)
    if view is None:
        raise HashListNotFound(f"no hash list named {name[:64]!r}")
    return view


async def list_lists(conn: asyncpg.Connection) -> list[HashListView]:
    return await repository.all_lists(conn)


async def _list_id(conn: asyncpg.Connection, name: str) -> int:
    list_id = await repository.lock_list(conn, name)
    if list_id is None:
        raise HashListNotFound(f"no hash list named {name[:64]!r}")
    return list_id


async def import_entries(
    uow: UnitOfWork,
    *,
    list_name: str,
    entries: Iterable[EntryInput],
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Add ``entries`` to ``list_name`` and record it, all or nothing.

    A bad line of a parsed file (``hash_list_line_invalid``) aborts the whole import.
    """
    conn = uow.conn
    list_id = await _list_id(conn, list_name)
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

    await repository.stage_import(conn, records())
    if progress is not None:
        progress(received)
    added, updated = await repository.merge_import(conn, list_id)
    result = ImportResult(list=list_name, received=received, added=added, updated=updated)
    uow.record(
        "hash_list.entries_added",
        subject_type="hash_list",
        subject_id=list_name,
        payload={"received": result.received, "added": result.added, "updated": result.updated},
    )
    return result


async def disable_entries(uow: UnitOfWork, *, list_name: str, hashes: Iterable[str]) -> int:
    """Disable the enabled entries of ``list_name`` with these hashes (hex) and record it;
    returns how many."""
    conn = uow.conn
    list_id = await _list_id(conn, list_name)
    values = [hash_to_db(parse_hash(value)) for value in hashes]
    count = await repository.disable_hashes(conn, list_id, values)
    uow.record(
        "hash_list.entries_disabled",
        subject_type="hash_list",
        subject_id=list_name,
        payload={"disabled": count},
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
        version = await repository.lists_version(conn)
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

    async def add(exported: ListExport) -> None:
        index.define_list(exported.name, exported.action, enabled=exported.enabled)
        if exported.entries is not None:
            await asyncio.to_thread(_add_csv, index, exported.name, exported.entries)

    version = await repository.read_snapshot(conn, add)
    return index, version


def _add_csv(index: HashIndex, name: str, buffer: io.BytesIO) -> None:
    lines = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
    index.add_many(name, iter_csv(lines))
