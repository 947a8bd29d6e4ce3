"""The operator commands behind ``registry policy check`` and ``registry hashes import``.

``replay`` decides every stored decision's evidence again under another policy (``decide``
is pure, so this is exact) and counts how the outcomes would move. ``import_file`` streams a
CSV or JSON-lines file into a hash list, reporting progress by bytes read.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, TextIO

import msgspec

from moderation import HashListLineInvalid, decide, iter_csv, iter_jsonl
from registry.gate import repository
from registry.gate.hashlists import ImportResult, import_entries

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import asyncpg

    from moderation import EntryInput, Policy

__all__ = ["Progress", "Replay", "import_file", "replay"]

_BAR = 30


class Replay(msgspec.Struct, kw_only=True, frozen=True):
    total: int
    changed: dict[str, int]
    """``"allowed→review"`` -> how many stored decisions would move that way."""

    def lines(self) -> list[str]:
        moved = sum(self.changed.values())
        out = [f"replayed {self.total} stored decision(s): {moved} would change"]
        out.extend(f"  {change}: {count}" for change, count in sorted(self.changed.items()))
        return out


async def replay(conn: asyncpg.Connection, policy: Policy) -> Replay:
    """Every stored decision's evidence decided under ``policy``, against its stored outcome."""
    total = 0
    changed: Counter[str] = Counter()
    async for stored in repository.iter_evidence(conn):
        total += 1
        status = decide(stored.evidence, policy).status
        if status != stored.status:
            changed[f"{stored.status}\u2192{status}"] += 1
    return Replay(total=total, changed=dict(changed))


class Progress:
    """A one-line progress bar on a terminal stream: bytes read of the file, entries sent."""

    def __init__(self, stream: TextIO, total_bytes: int) -> None:
        self._stream = stream
        self._total = max(total_bytes, 1)
        self.read = 0
        self._started = time.monotonic()

    def __call__(self, entries: int) -> None:
        fraction = min(self.read / self._total, 1.0)
        filled = int(fraction * _BAR)
        elapsed = time.monotonic() - self._started
        self._stream.write(
            f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {fraction:6.1%}"
            f"  {entries:,} entries  {elapsed:5.1f} s"
        )
        self._stream.flush()

    def done(self, message: str) -> None:
        self._stream.write(f"\n{message}\n")
        self._stream.flush()


def _lines(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            if progress is not None:
                progress.read += len(line)
            yield line


def _entries(path: Path, progress: Progress | None) -> Iterator[EntryInput]:
    """CSV (``.csv``) or JSON lines (``.jsonl``, ``.ndjson``, or a first line opening ``{``)."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return iter_jsonl(_lines(path, progress))
    if suffix != ".csv":
        with path.open("rb") as handle:
            if handle.read(64).lstrip().startswith(b"{"):
                return iter_jsonl(_lines(path, progress))
    return iter_csv(_text(_lines(path, progress)))


def _text(lines: Iterator[bytes]) -> Iterator[str]:
    for number, line in enumerate(lines, start=1):
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            raise HashListLineInvalid("not UTF-8", line=number) from None


async def import_file(
    conn: asyncpg.Connection, *, list_name: str, path: Path, progress: Progress | None = None
) -> ImportResult:
    """Import ``path`` into ``list_name``; call inside a transaction (all or nothing)."""
    return await import_entries(
        conn, list_name=list_name, entries=_entries(path, progress), progress=progress
    )
