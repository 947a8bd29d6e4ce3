"""Perceptual-hash lists: an in-memory index matched with numpy, and streaming file parsers.

Every entry is a 64-bit pHash in one numpy ``uint64`` array; matching XORs the query with the
whole array and counts bits with ``np.bitwise_count`` (numpy >= 2), which scans a million
entries in about a millisecond. An image is matched with its pHash and the pHashes of its
flips and rotations (``verifier.imaging.hash_variants``), and the smallest distance counts.

Each entry belongs to a named list with an action (``review`` or ``block``); entries and whole
lists can be disabled. Labels and sources are kept as UTF-8 in one growing buffer with
offsets, not as a million Python strings.

Concurrency: ``match`` reads a consistent snapshot (arrays are replaced, never shrunk in
place, when the index grows), so one writer and many readers are safe; services that refresh
from the database can also build a fresh index and swap the reference.

Import files (``iter_csv``, ``iter_jsonl``) are parsed line by line as generators, so a
million-line file is never held as a million Python objects; ``HashIndex.add_many``
consumes them in chunks.
"""

from __future__ import annotations

import csv
import itertools
import re
from typing import TYPE_CHECKING, Literal, TypeAlias, TypeVar

import msgspec
import numpy as np

from moderation.errors import HashListLineInvalid, HashListUnknown, HashValueInvalid
from moderation.evidence import HashFacts, HashMatch, SourceMatch

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from numpy.typing import NDArray

    from moderation.consent import SourceEvidence
    from moderation.evidence import ImageFacts

__all__ = [
    "MAX_FIELD_CHARS",
    "EntryInput",
    "HashIndex",
    "ListAction",
    "format_hash",
    "image_matches",
    "iter_csv",
    "iter_jsonl",
    "parse_hash",
    "source_matches",
]

ListAction: TypeAlias = Literal["review", "block"]
MAX_FIELD_CHARS = 512
_MAX_LINE_BYTES = 4096
_CHUNK = 65_536
_HASH_HEX = re.compile(r"[0-9a-fA-F]{16}")
_LIST_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_A = TypeVar("_A", bound=np.generic)


class EntryInput(msgspec.Struct, frozen=True, kw_only=True):
    """One entry to add: its hash as an int (0 .. 2**64-1), a label and an optional source."""

    hash: int
    label: str
    source: str | None = None


class _JsonEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    hash: str
    label: str
    source: str | None = None


class _List(msgspec.Struct, kw_only=True):
    name: str
    action: ListAction
    enabled: bool


def parse_hash(value: str) -> int:
    """A 64-bit perceptual hash from its 16 hex characters."""
    if _HASH_HEX.fullmatch(value) is None:
        raise HashValueInvalid("a perceptual hash is exactly 16 hex characters")
    return int(value, 16)


def format_hash(value: int) -> str:
    return f"{value:016x}"


class _Strings:
    """Append-only UTF-8 strings in one buffer; ``None`` is stored as offset -1."""

    __slots__ = ("_buffer", "_ends", "_size", "_starts")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._starts = np.zeros(0, dtype=np.int64)
        self._ends = np.zeros(0, dtype=np.int64)
        self._size = 0

    def extend(self, values: Iterable[str | None], count: int) -> None:
        encoded = [None if value is None else value.encode("utf-8") for value in values]
        lengths = np.fromiter(
            (-1 if item is None else len(item) for item in encoded), dtype=np.int64, count=count
        )
        missing = lengths < 0
        ends = len(self._buffer) + np.cumsum(np.where(missing, 0, lengths))
        starts = ends - np.where(missing, 0, lengths)
        starts[missing] = -1
        ends[missing] = -1
        self._buffer += b"".join(item for item in encoded if item is not None)
        self._starts = _grow(self._starts, self._size, starts)
        self._ends = _grow(self._ends, self._size, ends)
        self._size += count

    def get(self, index: int) -> str | None:
        start, end = int(self._starts[index]), int(self._ends[index])
        if start < 0:
            return None
        return self._buffer[start:end].decode("utf-8")


class HashIndex:
    """All entries of all hash lists, matched in one numpy pass per query hash."""

    __slots__ = ("_active", "_hashes", "_labels", "_list_of", "_lists", "_size", "_sources")

    def __init__(self) -> None:
        self._lists: list[_List] = []
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._list_of = np.zeros(0, dtype=np.int32)
        self._active = np.zeros(0, dtype=np.bool_)
        self._labels = _Strings()
        self._sources = _Strings()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def define_list(self, name: str, action: ListAction, *, enabled: bool = True) -> None:
        """Create list ``name``, or change its action and state if it exists."""
        if _LIST_NAME.fullmatch(name) is None:
            msg = "a list name is 1..64 characters of a-z, 0-9, '.', '_' and '-'"
            raise HashValueInvalid(msg)
        if action not in {"review", "block"}:
            raise HashValueInvalid("a list's action is 'review' or 'block'")
        for entry in self._lists:
            if entry.name == name:
                entry.action, entry.enabled = action, enabled
                return
        self._lists.append(_List(name=name, action=action, enabled=enabled))

    def set_list_enabled(self, name: str, *, enabled: bool) -> None:
        self._list(name).enabled = enabled

    def add_many(self, list_name: str, entries: Iterable[EntryInput]) -> int:
        """Add ``entries`` to list ``list_name`` in chunks; returns how many were added."""
        list_id = self._list_id(list_name)
        added = 0
        iterator = iter(entries)
        while chunk := list(itertools.islice(iterator, _CHUNK)):
            self._add_chunk(list_id, chunk)
            added += len(chunk)
        return added

    def disable(self, list_name: str, hashes: Iterable[int]) -> int:
        """Disable the entries of ``list_name`` with these hash values; returns how many."""
        list_id = self._list_id(list_name)
        wanted = np.fromiter((_checked_hash(h) for h in hashes), dtype=np.uint64)
        size = self._size
        hit = np.isin(self._hashes[:size], wanted) & (self._list_of[:size] == list_id)
        hit &= self._active[:size]
        self._active[:size][hit] = False
        return int(hit.sum())

    def match(self, hashes: Iterable[int], max_distance: int) -> list[HashMatch]:
        """The closest enabled entry of each list within ``max_distance`` bits of any query.

        Ties go to the entry added first. Results are ordered by distance, then list name.
        """
        if not 0 <= max_distance <= 64:  # noqa: PLR2004 - bits in a 64-bit hash
            raise HashValueInvalid("max_distance is 0..64")
        queries = [_checked_hash(h) for h in hashes]
        size = self._size
        stored, active, list_of = self._hashes[:size], self._active[:size], self._list_of[:size]
        if not queries or size == 0:
            return []
        scratch = np.empty(size, dtype=np.uint64)
        distances = np.empty(size, dtype=np.uint8)
        best = np.full(size, 255, dtype=np.uint8)
        for query in queries:
            np.bitwise_xor(stored, np.uint64(query), out=scratch)
            np.bitwise_count(scratch, out=distances)
            np.minimum(best, distances, out=best)
        candidates = np.flatnonzero((best <= max_distance) & active)
        results: dict[int, tuple[int, int]] = {}
        for index in candidates.tolist():
            list_id = int(list_of[index])
            distance = int(best[index])
            if not self._lists[list_id].enabled:
                continue
            if list_id not in results or distance < results[list_id][0]:
                results[list_id] = (distance, index)
        matches = [self._match(lid, distance, index) for lid, (distance, index) in results.items()]
        return sorted(matches, key=lambda m: (m.distance, m.list))

    def _match(self, list_id: int, distance: int, index: int) -> HashMatch:
        entry = self._lists[list_id]
        return HashMatch(
            list=entry.name,
            action=entry.action,
            label=self._labels.get(index) or "",
            source=self._sources.get(index),
            distance=distance,
            hash=format_hash(int(self._hashes[index])),
        )

    def _add_chunk(self, list_id: int, chunk: list[EntryInput]) -> None:
        count = len(chunk)
        hashes = np.fromiter((_checked_hash(e.hash) for e in chunk), dtype=np.uint64, count=count)
        self._labels.extend((_field(e.label, "label") for e in chunk), count)
        self._sources.extend(
            (None if e.source is None else _field(e.source, "source") for e in chunk), count
        )
        size = self._size
        self._hashes = _grow(self._hashes, size, hashes)
        self._list_of = _grow(self._list_of, size, np.full(count, list_id, dtype=np.int32))
        self._active = _grow(self._active, size, np.ones(count, dtype=np.bool_))
        # Publish the new size last: a concurrent match never sees half-written entries.
        self._size = size + count

    def _list(self, name: str) -> _List:
        return self._lists[self._list_id(name)]

    def _list_id(self, name: str) -> int:
        for list_id, entry in enumerate(self._lists):
            if entry.name == name:
                return list_id
        raise HashListUnknown(f"no hash list named {name[:64]!r}")


def image_matches(index: HashIndex, image: ImageFacts, max_distance: int) -> HashFacts:
    """The hash-list evidence for a decoded image: its pHash and variants against ``index``."""
    if image.phash is None:
        return HashFacts(error="image_not_hashed")
    hashes = [parse_hash(value) for value in (image.phash, *image.variants)]
    return HashFacts(matches=tuple(index.match(hashes, max_distance)))


def source_matches(image: ImageFacts, sources: Sequence[SourceEvidence]) -> tuple[SourceMatch, ...]:
    """The output's distance to each declared source whose pHash the registry holds."""
    if image.phash is None:
        return ()
    hashes = [parse_hash(value) for value in (image.phash, *image.variants)]
    found = []
    for source in sources:
        recorded = source.check.asset_phash if source.check is not None else None
        if recorded is None:
            continue
        target = parse_hash(recorded)
        distance = min((value ^ target).bit_count() for value in hashes)
        found.append(SourceMatch(asset_id=source.asset_id, type=source.type, distance=distance))
    return tuple(found)


def _grow(array: NDArray[_A], size: int, values: NDArray[_A]) -> NDArray[_A]:
    needed = size + len(values)
    if needed <= len(array):
        array[size:needed] = values
        return array
    grown = np.empty(max(needed, 2 * len(array), 1024), dtype=array.dtype)
    grown[:size] = array[:size]
    grown[size:needed] = values
    return grown


def _checked_hash(value: object) -> int:
    # Callers outside typed code (decoded JSON, numpy scalars) reach here too.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise HashValueInvalid("a perceptual hash is an integer in 0 .. 2**64-1")
    return value


def _field(value: str, name: str) -> str:
    if not value or len(value) > MAX_FIELD_CHARS:
        raise HashValueInvalid(f"{name} must be 1..{MAX_FIELD_CHARS} characters")
    return value


def iter_csv(lines: Iterable[str]) -> Iterator[EntryInput]:
    """Entries from CSV lines ``hash,label[,source]``; a ``hash,label,source`` header is skipped.

    Raises hash_list_line_invalid naming the 1-based line of the first bad row.
    """
    reader = csv.reader(_bounded_lines(lines))
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if line == 1 and row[0].strip().lower() == "hash":
            continue
        if len(row) not in {2, 3}:
            raise HashListLineInvalid("expected hash,label[,source]", line=line)
        source = row[2].strip() if len(row) == 3 and row[2].strip() else None  # noqa: PLR2004
        yield _entry(row[0].strip(), row[1].strip(), source, line)


def iter_jsonl(lines: Iterable[str | bytes]) -> Iterator[EntryInput]:
    """Entries from JSON lines ``{"hash": "...", "label": "...", "source": "..."}``."""
    decoder = msgspec.json.Decoder(_JsonEntry)
    for line, text in enumerate(lines, start=1):
        raw = text.encode("utf-8") if isinstance(text, str) else text
        if len(raw) > _MAX_LINE_BYTES:
            raise HashListLineInvalid(f"longer than {_MAX_LINE_BYTES} bytes", line=line)
        if not raw.strip():
            continue
        try:
            item = decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise HashListLineInvalid(str(exc), line=line) from None
        yield _entry(item.hash, item.label, item.source, line)


def _bounded_lines(lines: Iterable[str]) -> Iterator[str]:
    for line, text in enumerate(lines, start=1):
        if len(text) > _MAX_LINE_BYTES:
            raise HashListLineInvalid(f"longer than {_MAX_LINE_BYTES} characters", line=line)
        yield text


def _entry(hash_hex: str, label: str, source: str | None, line: int) -> EntryInput:
    if _HASH_HEX.fullmatch(hash_hex) is None:
        raise HashListLineInvalid("hash must be exactly 16 hex characters", line=line)
    if not label or len(label) > MAX_FIELD_CHARS:
        raise HashListLineInvalid(f"label must be 1..{MAX_FIELD_CHARS} characters", line=line)
    if source is not None and len(source) > MAX_FIELD_CHARS:
        raise HashListLineInvalid(f"source must be 1..{MAX_FIELD_CHARS} characters", line=line)
    return EntryInput(hash=int(hash_hex, 16), label=label, source=source)
