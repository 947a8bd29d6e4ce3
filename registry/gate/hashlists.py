"""Protected-hash lists: their rows in PostgreSQL (through ``registry.gate.repository``) and
this process's in-memory index.

A list holds one signal (``pdq`` or ``phash``). Entries come from files (``moderation.exchange``
formats), from JSON, or from an image: an image added to a pHash list is kept as its pHash
and the pHashes of a grid of its crops (``moderation.signals.stored_signals``), all under one
``image_id``, so a cropped copy of it still lands near one of them.

Bulk imports stream entries into a temporary table with COPY and merge them in one
statement (the last line for a hash wins; a hash already on the list is updated and enabled
again), so a million entries import in seconds. A PDQ entry below the policy's quality floor
is not imported (its hash would match noise), and the import report counts it. Lists and
entries are never deleted, only disabled, so a past decision's match can always be traced.

Every change to ``hash_lists`` or ``hash_list_entries`` bumps ``hash_lists_version`` (a
statement trigger, whoever writes). ``HashLists.index`` reads that one-row counter on each
gate request and, when it moved, applies what changed since its last read (a delta by
writing transaction, ``repository.read_changes``) before answering: every service process
sees a change on its next request, and a change to one entry costs a few rows, not a reload.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

import msgspec

from moderation import HashIndex, HashValueInvalid, check_list_name
from moderation.errors import HashSignalMismatch
from moderation.exchange import ExportEntry, write_entries
from moderation.signals import SIGNAL_BITS, parse_hash, stored_signals
from registry.core import db
from registry.gate import repository
from registry.gate.errors import HashListExists, HashListNotFound
from registry.gate.repository import HashListView, ListRow, StagedEntry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator

    import asyncpg
    from PIL import Image

    from moderation import HashEntry, IndexHit
    from moderation.exchange import FormatName, ImportEntry
    from moderation.hashlists import ListAction, ListScope
    from moderation.signals import Signal
    from registry.core.uow import UnitOfWork

log = logging.getLogger(__name__)

__all__ = [
    "HashListView",
    "HashLists",
    "ImageAdded",
    "ImportResult",
    "add_image",
    "create_list",
    "disable_entries",
    "export_file",
    "get_list",
    "import_entries",
    "list_lists",
]

_PROGRESS_EVERY = 50_000
_EXPORT_BATCH = 5_000


class ImportResult(msgspec.Struct, kw_only=True, frozen=True):
    list: str
    received: int
    """Entries read from the input (a hash listed twice counts twice)."""
    added: int
    """Hashes new to the list."""
    updated: int
    """Hashes already on the list: label, source and review state replaced, enabled again."""
    low_quality: int = 0
    """PDQ entries not imported: their quality is below the policy's floor."""


class ImageAdded(msgspec.Struct, kw_only=True, frozen=True):
    list: str
    image_id: str
    """Shared by every entry made from the image."""
    hash: str
    """The image's own hash (hex, of the list's signal)."""
    entries: int
    """Entries stored: the image's hash, and on a pHash list the hashes of its crops."""
    quality: int | None = None
    """PDQ's quality of the image (PDQ lists)."""


async def create_list(
    uow: UnitOfWork,
    *,
    name: str,
    signal: Signal,
    action: ListAction,
    tenant: str,
    scope: ListScope = "global",
    unreviewed_distance: int | None = None,
) -> HashListView:
    """Create a hash list owned by ``tenant`` and record it; ``hash_list_exists`` when the
    name is taken."""
    check_list_name(name)
    bits = SIGNAL_BITS.get(signal)
    if bits is None:
        raise HashValueInvalid(f"unknown signal {str(signal)[:32]!r}; expected pdq or phash")
    if action not in {"review", "block"}:
        raise HashValueInvalid("a list's action is 'review' or 'block'")
    if scope not in {"global", "tenant"}:
        raise HashValueInvalid("a list's scope is 'global' or 'tenant'")
    if unreviewed_distance is not None and not 0 <= unreviewed_distance <= bits:
        raise HashValueInvalid(f"unreviewed_distance is 0..{bits} for {signal}")
    created = await repository.insert_list(
        uow.conn,
        name=name,
        signal=signal,
        action=action,
        unreviewed_distance=unreviewed_distance,
        tenant=tenant,
        scope=scope,
        created_by=uow.actor,
    )
    if not created:
        raise HashListExists(f"a hash list named {name!r} exists")
    uow.record(
        "hash_list.created",
        subject_type="hash_list",
        subject_id=name,
        payload={
            "signal": signal,
            "action": action,
            "scope": scope,
            "unreviewed_distance": unreviewed_distance,
        },
        tenant=tenant,
    )
    return await get_list(uow.conn, name, tenant)


async def get_list(conn: asyncpg.Connection, name: str, tenant: str | None) -> HashListView:
    """The list if ``tenant`` owns it (None: the operator, any list); else not found."""
    view = await repository.list_view(conn, name, tenant)
    if view is None:
        raise HashListNotFound(f"no hash list named {name[:64]!r}")
    return view


async def list_lists(conn: asyncpg.Connection, tenant: str | None) -> list[HashListView]:
    return await repository.all_lists(conn, tenant)


async def _locked(uow: UnitOfWork, name: str) -> ListRow:
    # A client changes its own tenant's lists; the command line (no tenant) any list.
    row = await repository.lock_list(uow.conn, name, uow.tenant)
    if row is None:
        raise HashListNotFound(f"no hash list named {name[:64]!r}")
    return row


async def import_entries(
    uow: UnitOfWork,
    *,
    list_name: str,
    entries: Iterable[ImportEntry],
    quality_floor: int,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Add ``entries`` to ``list_name`` and record it, all or nothing.

    A bad line of a parsed file (``hash_list_line_invalid``) or an entry of another signal
    than the list's (``hash_signal_mismatch``) aborts the whole import.
    """
    conn = uow.conn
    target = await _locked(uow, list_name)
    received = 0
    low_quality = 0

    def staged() -> Iterator[StagedEntry]:
        nonlocal received, low_quality
        for received, entry in enumerate(entries, start=1):
            if progress is not None and received % _PROGRESS_EVERY == 0:
                progress(received)
            if entry.signal != target.signal:
                msg = f"a {entry.signal} hash on a {target.signal} list"
                raise HashSignalMismatch(msg, line=received)
            if entry.quality is not None and entry.quality < quality_floor:
                low_quality += 1
                continue
            # Stored trimmed and non-blank: exports give back what was imported.
            label = entry.label.strip()
            source = entry.source.strip() if entry.source is not None else ""
            if not label:
                raise HashValueInvalid(f"entry {received}: the label is blank")
            yield StagedEntry(
                line=received,
                hash=entry.hash,
                label=label,
                source=source or None,
                reviewed=entry.reviewed,
                quality=entry.quality,
            )

    await repository.stage_import(conn, staged())
    if progress is not None:
        progress(received)
    added, updated = await repository.merge_import(conn, target.list_id)
    result = ImportResult(
        list=list_name, received=received, added=added, updated=updated, low_quality=low_quality
    )
    uow.record(
        "hash_list.entries_added",
        subject_type="hash_list",
        subject_id=list_name,
        payload={
            "received": result.received,
            "added": result.added,
            "updated": result.updated,
            "low_quality": result.low_quality,
        },
    )
    return result


async def add_image(
    uow: UnitOfWork,
    *,
    list_name: str,
    image: Image.Image,
    label: str,
    source: str | None,
    quality_floor: int,
) -> ImageAdded:
    """Add a decoded image to ``list_name`` and record it (counts and the image id only).

    A PDQ image below the quality floor is refused (``hash_value_invalid``): nothing could
    match it reliably.
    """
    conn = uow.conn
    target = await _locked(uow, list_name)
    label, source = label.strip(), (source or "").strip() or None
    if not label:
        raise HashValueInvalid("the label is blank")
    signals = await asyncio.to_thread(stored_signals, image)
    image_id = uuid.uuid4()
    quality: int | None = None
    if target.signal == "pdq":
        quality = signals.pdq_quality
        if quality < quality_floor:
            msg = f"PDQ quality {quality} is below the policy's floor of {quality_floor}"
            raise HashValueInvalid(msg)
    rows = signals.entries(target.signal)
    own = rows[0][0]
    staged = [
        StagedEntry(
            line=line,
            hash=parse_hash(target.signal, value),
            label=label,
            source=source,
            quality=quality,
            image_id=image_id,
            crop=crop,
        )
        for line, (value, crop) in enumerate(rows, start=1)
    ]
    await repository.stage_import(conn, staged)
    added, updated = await repository.merge_import(conn, target.list_id)
    uow.record(
        "hash_list.image_added",
        subject_type="hash_list",
        subject_id=list_name,
        payload={"image_id": str(image_id), "added": added, "updated": updated},
    )
    return ImageAdded(
        list=list_name, image_id=str(image_id), hash=own, entries=len(staged), quality=quality
    )


async def disable_entries(uow: UnitOfWork, *, list_name: str, hashes: Iterable[str]) -> int:
    """Disable the enabled entries of ``list_name`` with these hashes (hex, of the list's
    signal) and record it; returns how many."""
    conn = uow.conn
    target = await _locked(uow, list_name)
    values = [parse_hash(target.signal, value) for value in hashes]
    count = await repository.disable_hashes(conn, target.list_id, values)
    uow.record(
        "hash_list.entries_disabled",
        subject_type="hash_list",
        subject_id=list_name,
        payload={"disabled": count},
    )
    return count


async def export_file(
    conn: asyncpg.Connection, list_name: str, tenant: str | None, fmt: FormatName
) -> tuple[HashListView, AsyncIterator[bytes]]:
    """The list (if ``tenant`` owns it) and its enabled entries as a file of ``fmt``, in
    parts: what is refused (no such list, a format that cannot hold the list's signal) is
    refused here, before any part is written. Read the parts while ``conn`` is held."""
    view = await get_list(conn, list_name, tenant)
    row = await repository.find_list(conn, list_name, tenant)
    if row is None:
        raise HashListNotFound(f"no hash list named {list_name[:64]!r}")
    if fmt == "stopncii" and view.signal != "pdq":
        raise HashSignalMismatch("StopNCII exchanges PDQ hashes only", line=None)
    write_entries((), fmt)  # an unknown format is refused now, not at the first part

    async def parts() -> AsyncIterator[bytes]:
        first = True
        async for batch in repository.export_batches(conn, row.list_id, _EXPORT_BATCH):
            entries = [
                ExportEntry(
                    signal=view.signal,
                    hash=r.hash,
                    label=r.label,
                    source=r.source,
                    reviewed=r.reviewed,
                )
                for r in batch
            ]
            yield b"".join(write_entries(entries, fmt, header=first))
            first = False
        if first:
            yield b"".join(write_entries((), fmt))

    return view, parts()


class HashLists:
    """This process's in-memory index of every list, kept at the database's version.

    An update runs as a task of its own on its own connection, and callers wait for it
    shielded: a request that gives up (its step timed out) does not cancel the update the
    next request needs.
    """

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._index = HashIndex()
        self._version: int | None = None
        self._horizon: int | None = None
        self._update: asyncio.Task[None] | None = None
        # One update at a time: an older snapshot applied after a newer one would put back
        # entries' older states (a disabled entry enabled again) until the next change.
        self._applying = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HashLists(version={self._version}, entries={len(self._index)})"

    async def index(self, conn: asyncpg.Connection) -> HashIndex:
        """The index as of the lists' current version (brought up to it first if needed)."""
        version = await repository.lists_version(conn)
        while self._version is None or self._version < version:
            if self._update is None or self._update.done():
                self._update = asyncio.create_task(self._apply())
            await asyncio.shield(self._update)
        return self._index

    async def refresh(self) -> None:
        """Load the lists now (at start, so the first request does not wait for it)."""
        await self._apply()

    async def watch(self, interval: float) -> None:
        """Apply changes soon after any process makes them, ahead of the next request."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with db.acquire(self._pool, wait=self._acquire_timeout) as conn:
                    await self.index(conn)
            except Exception as exc:  # noqa: BLE001 - the next request retries and fails closed
                log.warning("hash lists not refreshed: %s", type(exc).__name__)

    async def entries(self, hits: Iterable[IndexHit]) -> dict[int, HashEntry]:
        """What the database holds of these matched entries (label, source, crop)."""
        wanted = sorted({hit.entry_id for hit in hits})
        if not wanted:
            return {}
        async with db.acquire(self._pool, wait=self._acquire_timeout) as conn:
            return await repository.entry_details(conn, wanted)

    async def _apply(self) -> None:
        async with self._applying:
            await self._apply_changes()

    async def _apply_changes(self) -> None:
        async with db.acquire(self._pool, wait=self._acquire_timeout) as conn:
            changes = await repository.read_changes(conn, self._horizon)
        index = self._index
        # Lists first: a new entry of a new list must find its list when it starts to match.
        index.set_lists(changes.lists)
        for signal, rows in changes.rows.items():
            if len(rows):
                await asyncio.to_thread(index.upsert, signal, rows)
        self._version, self._horizon = changes.version, changes.horizon
