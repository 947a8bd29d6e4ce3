"""Protected-hash lists in memory: one table of entries per signal, matched with numpy.

A list holds hashes of one signal (``moderation.signals``: 256-bit ``pdq`` or 64-bit
``phash``) and has an action (``review`` or ``block``). Entries and whole lists can be
disabled; an entry can be unreviewed (taken from an exchange as is), and a list may give its
unreviewed entries a stricter distance than its reviewed ones.

The index holds only what matching needs: per entry its id, its list, its hash as 64-bit
words (one column per word) and two flags, 45 bytes a PDQ entry, 21 a pHash entry. Labels
and sources stay in the database: the caller looks up the few entries that matched.

Matching is a scan: XOR and ``np.bitwise_count`` over the hash columns, a block of rows at a
time so that the block stays in the CPU cache while every query hash (an image's eight flips
and rotations) passes over it. For PDQ the first two words are a lower bound: only rows
within the distance on those 128 bits have the other two counted.

Updates are incremental (``upsert``): an entry id the index holds gets its new flags, a new
one is appended. The database hands out entry ids in increasing order, so appending keeps the
ids sorted; an id that arrives late (a transaction that committed after a later one) merges
by a sort. Readers never see half an update: rows are written beyond the published size
first and the new size, or the new arrays, are published last, in one reference.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import msgspec
import numpy as np

from moderation.errors import HashListUnknown, HashValueInvalid
from moderation.evidence import HashFacts, HashMatch, SourceMatch
from moderation.signals import DIHEDRAL, SIGNAL_BITS, SIGNALS, Signal, format_hash, parse_hash

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from numpy.typing import NDArray

    from moderation.consent import SourceEvidence
    from moderation.evidence import ImageFacts
    from moderation.policy import HashBands
    from moderation.signals import ImageSignals

__all__ = [
    "HashEntry",
    "HashIndex",
    "IndexHit",
    "IndexRows",
    "ListAction",
    "ListScope",
    "ListSpec",
    "check_list_name",
    "hash_facts",
    "image_hits",
    "source_matches",
]

ListAction: TypeAlias = Literal["review", "block"]
ListScope: TypeAlias = Literal["global", "tenant"]
_LIST_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Rows per block of a scan: a block of one word column (256 KiB) and its scratch arrays fit
# in a core's L2 cache while all query hashes pass over it (about 1.5x faster than whole
# columns on the 2-core machine, docs/benchmarks.md).
_BLOCK: Final = 32_768
# Words counted before the rest: for PDQ two words (128 bits) prune all but a handful of
# rows, since unrelated hashes sit about 64 bits apart on them.
_PREFILTER_WORDS: Final = 2
_ENABLED: Final = np.uint8(1)
_REVIEWED: Final = np.uint8(2)


def check_list_name(name: str) -> str:
    """``name`` if it is a valid list name, else hash_value_invalid."""
    if _LIST_NAME.fullmatch(name) is None:
        msg = "a list name is 1..64 characters of a-z, 0-9, '.', '_' and '-'"
        raise HashValueInvalid(msg)
    return name


class ListSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A list as the index knows it (its database row, without its entries)."""

    list_id: int
    name: str
    signal: Signal
    action: ListAction
    enabled: bool = True
    unreviewed_distance: int | None = None
    """Unreviewed entries match only this close (when stricter than the policy's band)."""
    tenant: str = "system"
    scope: ListScope = "global"
    """``global`` lists match every tenant's images, ``tenant`` lists their tenant's only."""

    def serves(self, tenant: str | None) -> bool:
        """Whether the list matches for ``tenant`` (None: for any, as an operator asks)."""
        return self.scope == "global" or tenant is None or tenant == self.tenant


class IndexHit(msgspec.Struct, frozen=True, kw_only=True):
    """The closest entry of one list to any of the query hashes."""

    list_id: int
    list: str
    action: ListAction
    signal: Signal
    entry_id: int
    distance: int
    reviewed: bool
    query: int
    """The position, in the queries, of the hash that came closest."""


class IndexRows:
    """Entries of one signal as columns: ids, list ids, hashes (n x bytes) and flags."""

    __slots__ = ("enabled", "entry_id", "hashes", "list_id", "reviewed")

    def __init__(
        self,
        *,
        entry_id: NDArray[np.int64],
        list_id: NDArray[np.int64],
        hashes: NDArray[np.uint8],
        enabled: NDArray[np.bool_],
        reviewed: NDArray[np.bool_],
    ) -> None:
        count = len(entry_id)
        if not len(list_id) == len(hashes) == len(enabled) == len(reviewed) == count:
            raise HashValueInvalid("index rows of unequal lengths")
        self.entry_id, self.list_id, self.hashes = entry_id, list_id, hashes
        self.enabled, self.reviewed = enabled, reviewed

    def __len__(self) -> int:
        return len(self.entry_id)

    @classmethod
    def of(cls, signal: Signal, rows: Iterable[tuple[int, int, bytes, bool, bool]]) -> IndexRows:
        """Rows from ``(entry_id, list_id, hash, enabled, reviewed)`` tuples."""
        width = SIGNAL_BITS[signal] // 8
        items = list(rows)
        if any(len(row[2]) != width for row in items):
            raise HashValueInvalid(f"a {signal} hash is {width} bytes")
        return cls(
            entry_id=np.array([r[0] for r in items], dtype=np.int64),
            list_id=np.array([r[1] for r in items], dtype=np.int64),
            hashes=np.frombuffer(b"".join(r[2] for r in items), dtype=np.uint8).reshape(
                len(items), width
            ),
            enabled=np.array([r[3] for r in items], dtype=np.bool_),
            reviewed=np.array([r[4] for r in items], dtype=np.bool_),
        )


class _Columns:
    """One published state of a table: arrays with room to grow, and how much is in use."""

    __slots__ = ("entry_id", "flags", "list_id", "size", "words")

    def __init__(
        self,
        *,
        words: list[NDArray[np.uint64]],
        entry_id: NDArray[np.int64],
        list_id: NDArray[np.int32],
        flags: NDArray[np.uint8],
        size: int,
    ) -> None:
        self.words, self.entry_id, self.list_id, self.flags = words, entry_id, list_id, flags
        self.size = size

    @property
    def capacity(self) -> int:
        return len(self.entry_id)

    def nbytes(self) -> int:
        words = sum(column.nbytes for column in self.words)
        return words + self.entry_id.nbytes + self.list_id.nbytes + self.flags.nbytes


def _empty(word_count: int, capacity: int) -> _Columns:
    return _Columns(
        words=[np.zeros(capacity, dtype=np.uint64) for _ in range(word_count)],
        entry_id=np.zeros(capacity, dtype=np.int64),
        list_id=np.zeros(capacity, dtype=np.int32),
        flags=np.zeros(capacity, dtype=np.uint8),
        size=0,
    )


def _as_words(hashes: NDArray[np.uint8], word_count: int) -> NDArray[np.uint64]:
    """Big-endian hash bytes as native 64-bit words, one row per hash."""
    raw = np.ascontiguousarray(hashes).reshape(-1)
    return np.frombuffer(raw.tobytes(), dtype=">u8").astype(np.uint64).reshape(-1, word_count)


def _flags(rows: IndexRows) -> NDArray[np.uint8]:
    flags = np.where(rows.enabled, _ENABLED, np.uint8(0)).astype(np.uint8)
    flags |= np.where(rows.reviewed, _REVIEWED, np.uint8(0)).astype(np.uint8)
    return flags


class _Table:
    """The entries of one signal."""

    __slots__ = ("_columns", "signal", "word_count")

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.word_count = SIGNAL_BITS[signal] // 64
        self._columns = _empty(self.word_count, 0)

    def __len__(self) -> int:
        return self._columns.size

    def nbytes(self) -> int:
        return self._columns.nbytes()

    def upsert(self, rows: IndexRows) -> None:
        if rows.hashes.ndim != 2 or rows.hashes.shape[1] != self.word_count * 8:  # noqa: PLR2004
            raise HashValueInvalid(f"a {self.signal} hash is {self.word_count * 8} bytes")
        if not len(rows):
            return
        order = np.argsort(rows.entry_id, kind="stable")
        ids = rows.entry_id[order]
        # A delta may carry an entry twice (changed twice since the last read): the later
        # row, last after the stable sort, is its present state.
        last = np.ones(len(ids), dtype=np.bool_)
        last[:-1] = ids[1:] != ids[:-1]
        order, ids = order[last], ids[last]
        words = _as_words(rows.hashes[order], self.word_count)
        list_ids = rows.list_id[order].astype(np.int32)
        flags = _flags(rows)[order]
        columns = self._columns
        size = columns.size
        held = columns.entry_id[:size]
        position = np.searchsorted(held, ids)
        known = position < size
        known[known] = held[position[known]] == ids[known]
        if known.any():
            at = position[known]
            columns.flags[at] = flags[known]
            columns.list_id[at] = list_ids[known]
            for k in range(self.word_count):
                columns.words[k][at] = words[known, k]
        new = ~known
        if not new.any():
            return
        if size and ids[new][0] < held[-1]:
            self._columns = self._merged(columns, ids[new], words[new], list_ids[new], flags[new])
        else:
            self._columns = self._appended(columns, ids[new], words[new], list_ids[new], flags[new])

    def _appended(
        self,
        columns: _Columns,
        ids: NDArray[np.int64],
        words: NDArray[np.uint64],
        list_ids: NDArray[np.int32],
        flags: NDArray[np.uint8],
    ) -> _Columns:
        size, count = columns.size, len(ids)
        needed = size + count
        if needed > columns.capacity:
            # A first load is allocated exactly; later growth leaves a quarter spare, so
            # memory stays near 45 bytes an entry rather than the double of doubling.
            grown = _empty(self.word_count, needed if size == 0 else needed + needed // 4)
            grown.entry_id[:size] = columns.entry_id[:size]
            grown.list_id[:size] = columns.list_id[:size]
            grown.flags[:size] = columns.flags[:size]
            for k in range(self.word_count):
                grown.words[k][:size] = columns.words[k][:size]
            columns = grown
        columns.entry_id[size:needed] = ids
        columns.list_id[size:needed] = list_ids
        columns.flags[size:needed] = flags
        for k in range(self.word_count):
            columns.words[k][size:needed] = words[:, k]
        return _Columns(
            words=columns.words,
            entry_id=columns.entry_id,
            list_id=columns.list_id,
            flags=columns.flags,
            size=needed,
        )

    def _merged(
        self,
        columns: _Columns,
        ids: NDArray[np.int64],
        words: NDArray[np.uint64],
        list_ids: NDArray[np.int32],
        flags: NDArray[np.uint8],
    ) -> _Columns:
        size = columns.size
        all_ids = np.concatenate([columns.entry_id[:size], ids])
        order = np.argsort(all_ids, kind="stable")
        return _Columns(
            words=[
                np.concatenate([columns.words[k][:size], words[:, k]])[order]
                for k in range(self.word_count)
            ],
            entry_id=all_ids[order],
            list_id=np.concatenate([columns.list_id[:size], list_ids])[order],
            flags=np.concatenate([columns.flags[:size], flags])[order],
            size=len(all_ids),
        )

    def scan(
        self, queries: NDArray[np.uint64], max_distance: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(row positions, distances, query positions) of every row within ``max_distance``
        of a query, enabled or not."""
        columns = self._columns
        size, words = columns.size, columns.words
        prefix = min(_PREFILTER_WORDS, self.word_count)
        scratch = np.empty(_BLOCK, dtype=np.uint64)
        counted = np.empty(_BLOCK, dtype=np.uint8)
        near = np.empty(_BLOCK, dtype=np.uint8)
        found: list[tuple[NDArray[np.int64], NDArray[np.int64], int]] = []
        for start in range(0, size, _BLOCK):
            end = min(size, start + _BLOCK)
            n = end - start
            for q, query in enumerate(queries):
                np.bitwise_xor(words[0][start:end], query[0], out=scratch[:n])
                np.bitwise_count(scratch[:n], out=near[:n])
                for k in range(1, prefix):
                    np.bitwise_xor(words[k][start:end], query[k], out=scratch[:n])
                    np.bitwise_count(scratch[:n], out=counted[:n])
                    np.add(near[:n], counted[:n], out=near[:n])
                rows = np.flatnonzero(near[:n] <= max_distance)
                if not rows.size:
                    continue
                distance = near[rows].astype(np.int64)
                rows += start
                for k in range(prefix, self.word_count):
                    distance += np.bitwise_count(words[k][rows] ^ query[k])
                keep = distance <= max_distance
                if keep.any():
                    found.append((rows[keep], distance[keep], q))
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return (
            np.concatenate([rows for rows, _, _ in found]),
            np.concatenate([distance for _, distance, _ in found]),
            np.concatenate([np.full(len(rows), q, dtype=np.int64) for rows, _, q in found]),
        )

    def hit_rows(
        self, rows: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.uint8]]:
        columns = self._columns
        return columns.entry_id[rows], columns.list_id[rows], columns.flags[rows]


class HashIndex:
    """Every list and every entry, by signal, matched in numpy."""

    __slots__ = ("_lists", "_tables")

    def __init__(self) -> None:
        self._lists: dict[int, ListSpec] = {}
        self._tables: dict[Signal, _Table] = {signal: _Table(signal) for signal in SIGNALS}

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())

    def count(self, signal: Signal) -> int:
        """Entries of ``signal`` held (disabled ones included)."""
        return len(self._tables[signal])

    def nbytes(self, signal: Signal) -> int:
        """Bytes the entries of ``signal`` take (arrays, spare room included)."""
        return self._tables[signal].nbytes()

    def set_lists(self, lists: Iterable[ListSpec]) -> None:
        """Replace what the index knows of the lists (names, signals, actions, states)."""
        specs = {}
        for spec in lists:
            check_list_name(spec.name)
            specs[spec.list_id] = spec
        self._lists = specs

    def lists(self) -> list[ListSpec]:
        return sorted(self._lists.values(), key=lambda spec: spec.list_id)

    def searchable(self, signal: Signal, tenant: str | None = None) -> bool:
        """Whether an enabled list of ``signal`` serves ``tenant`` (an image's hashes of that
        signal are then worth judging)."""
        return any(
            s.enabled and s.signal == signal and s.serves(tenant) for s in self._lists.values()
        )

    def upsert(self, signal: Signal, rows: IndexRows) -> None:
        """Add entries, or update the state of entries the index holds, by entry id."""
        self._tables[signal].upsert(rows)

    def match(
        self,
        signal: Signal,
        queries: Sequence[bytes],
        max_distance: int,
        *,
        tenant: str | None = None,
    ) -> list[IndexHit]:
        """The closest enabled entry of each enabled list of ``signal`` that serves
        ``tenant``, within ``max_distance`` bits of any query (within the list's unreviewed
        distance for an unreviewed entry).

        Ties go to the lower entry id. Results are ordered by distance, then list name.
        """
        (hits,) = self._matched(signal, [(q, max_distance) for q in queries], tenant, each=False)
        return hits

    def match_each(
        self, signal: Signal, queries: Sequence[tuple[bytes, int]], *, tenant: str | None = None
    ) -> list[list[IndexHit]]:
        """For each (hash, max distance) on its own, what ``match`` gives for it alone: one
        scan for all of them, so a batch of lookups reads the entries once."""
        return self._matched(signal, queries, tenant, each=True)

    def _matched(
        self,
        signal: Signal,
        queries: Sequence[tuple[bytes, int]],
        tenant: str | None,
        *,
        each: bool,
    ) -> list[list[IndexHit]]:
        bits = SIGNAL_BITS.get(signal)
        if bits is None:
            raise HashValueInvalid(f"unknown signal {str(signal)[:32]!r}")
        width = bits // 8
        for query, max_distance in queries:
            if not 0 <= max_distance <= bits:
                raise HashValueInvalid(f"max_distance is 0..{bits} for {signal}")
            if len(query) != width:
                raise HashValueInvalid(f"a {signal} hash is {width} bytes")
        groups = len(queries) if each else 1
        best: list[dict[int, IndexHit]] = [{} for _ in range(groups)]
        table = self._tables[signal]
        if queries and len(table):
            words = _as_words(
                np.frombuffer(b"".join(q for q, _ in queries), dtype=np.uint8), bits // 64
            )
            limits = [distance for _, distance in queries]
            rows, distances, positions = table.scan(words, max(limits))
            entry_ids, list_ids, flags = table.hit_rows(rows)
            for entry_id, list_id, flag, distance, query in zip(
                entry_ids.tolist(),
                list_ids.tolist(),
                flags.tolist(),
                distances.tolist(),
                positions.tolist(),
                strict=True,
            ):
                spec = self._lists.get(list_id)
                if distance > limits[query] or spec is None:
                    continue
                if not _counts(spec, signal, tenant, flag, distance):
                    continue
                found = best[query if each else 0]
                held = found.get(list_id)
                if held is None or (distance, entry_id) < (held.distance, held.entry_id):
                    found[list_id] = IndexHit(
                        list_id=list_id,
                        list=spec.name,
                        action=spec.action,
                        signal=signal,
                        entry_id=entry_id,
                        distance=distance,
                        reviewed=bool(flag & _REVIEWED),
                        query=query,
                    )
        return [sorted(found.values(), key=lambda hit: (hit.distance, hit.list)) for found in best]


def _counts(spec: ListSpec, signal: Signal, tenant: str | None, flag: int, distance: int) -> bool:
    """Whether a scanned row within the distance is a match: an enabled entry of an enabled
    list of the signal serving the tenant, unreviewed ones within their list's distance."""
    if not (spec.enabled and spec.signal == signal and spec.serves(tenant)):
        return False
    if not flag & _ENABLED:
        return False
    unreviewed = not flag & _REVIEWED
    limit = spec.unreviewed_distance
    return not (unreviewed and limit is not None and distance > limit)


class HashEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What the database holds of a matched entry beyond the index."""

    entry_id: int
    hash: bytes
    label: str
    source: str | None = None
    crop: str | None = None


def image_hits(
    index: HashIndex, signals: ImageSignals, bands: HashBands, *, tenant: str | None
) -> list[IndexHit]:
    """The closest entry of each list of either signal that serves ``tenant`` to any copy
    of the image, within the policy's review distance of that signal."""
    hits: list[IndexHit] = []
    for hashes in (signals.pdq, signals.phash):
        if index.searchable(hashes.signal, tenant):
            queries = [parse_hash(hashes.signal, value) for value in hashes.hashes]
            _, review = bands.bands(hashes.signal)
            hits += index.match(hashes.signal, queries, review, tenant=tenant)
    return sorted(hits, key=lambda hit: (hit.distance, hit.list))


def hash_facts(
    index: HashIndex,
    signals: ImageSignals,
    hits: Sequence[IndexHit],
    entries: Mapping[int, HashEntry],
    *,
    tenant: str | None,
) -> HashFacts:
    """The hash-list evidence: each hit with its entry's label, source and crop.

    ``pdq_quality`` is recorded when PDQ lists were searched: then, and only then, a low
    quality says that a miss on them proves little.
    """
    matches = []
    for hit in hits:
        entry = entries.get(hit.entry_id)
        if entry is None:
            raise HashListUnknown(f"entry {hit.entry_id} of list {hit.list!r} is not on record")
        trimmed = " trimmed" if hit.query >= len(DIHEDRAL) else ""
        matches.append(
            HashMatch(
                list=hit.list,
                action=hit.action,
                label=entry.label,
                source=entry.source,
                distance=hit.distance,
                hash=format_hash(entry.hash),
                signal=hit.signal,
                entry_id=hit.entry_id,
                transform=DIHEDRAL[hit.query % len(DIHEDRAL)] + trimmed,
                crop=entry.crop,
                reviewed=hit.reviewed,
            )
        )
    quality = signals.pdq.quality if index.searchable("pdq", tenant) else None
    return HashFacts(matches=tuple(matches), pdq_quality=quality)


def source_matches(image: ImageFacts, sources: Sequence[SourceEvidence]) -> tuple[SourceMatch, ...]:
    """The output's distance to each declared source whose pHash the registry holds."""
    if image.phash is None:
        return ()
    hashes = [int.from_bytes(parse_hash("phash", v)) for v in (image.phash, *image.variants)]
    found = []
    for source in sources:
        recorded = source.check.asset_phash if source.check is not None else None
        if recorded is None:
            continue
        target = int.from_bytes(parse_hash("phash", recorded))
        distance = min((value ^ target).bit_count() for value in hashes)
        found.append(SourceMatch(asset_id=source.asset_id, type=source.type, distance=distance))
    return tuple(found)
