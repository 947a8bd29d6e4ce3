"""The operator commands behind ``registry policy check``, ``POST /v1/policy/check`` and
``registry hashes import``.

``replay`` decides every stored decision's evidence again under another policy (``decide``
is pure, so this is exact) and counts how the outcomes would move. ``check_candidate``
replays the shipped red-team corpus (``moderation.redteam``) under a candidate policy before
anyone loads it. ``import_file`` streams a
list file (any ``moderation.exchange`` format) into a hash list, telling a callback how far
it got (bytes read, entries sent); how that is shown is the caller's business.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import TYPE_CHECKING

import msgspec

from moderation import decide, load_policy
from moderation.exchange import FormatName, detect_format, read_entries
from moderation.redteam import Corpus, Report, load_corpus, run_corpus, shipped_corpus
from registry.gate import repository
from registry.gate.hashlists import ImportResult, import_entries

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import asyncpg

    from moderation import Policy
    from registry.core.uow import UnitOfWork
    from registry.gate.vault import DecisionVault

__all__ = ["Replay", "check_candidate", "import_file", "replay"]


class Replay(msgspec.Struct, kw_only=True, frozen=True):
    total: int
    changed: dict[str, int]
    """``"allowed→review"`` -> how many stored decisions would move that way."""

    def lines(self) -> list[str]:
        moved = sum(self.changed.values())
        out = [f"replayed {self.total} stored decision(s): {moved} would change"]
        out.extend(f"  {change}: {count}" for change, count in sorted(self.changed.items()))
        return out


async def replay(conn: asyncpg.Connection, vault: DecisionVault, policy: Policy) -> Replay:
    """Every stored decision's evidence decided under ``policy``, against its stored outcome
    (decisions whose evidence was erased with a consent cannot be replayed)."""
    total = 0
    changed: Counter[str] = Counter()
    async for stored_status, evidence in vault.evidence(conn):
        total += 1
        status = decide(evidence, policy).status
        if status != stored_status:
            changed[f"{stored_status}\u2192{status}"] += 1
    return Replay(total=total, changed=dict(changed))


class _BytesRead:
    """How much of the file the parser has taken so far."""

    def __init__(self) -> None:
        self.count = 0


def _lines(path: Path, read: _BytesRead) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            read.count += len(line)
            yield line


async def import_file(
    uow: UnitOfWork,
    *,
    list_name: str,
    path: Path,
    fmt: FormatName | None,
    quality_floor: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import ``path`` into ``list_name`` in ``uow``, recorded, all or nothing.

    ``fmt`` None detects the format from the file's name and first bytes.
    ``on_progress(bytes_read, entries_sent)`` is called every so many entries and once at the
    end, when every entry is sent (before the list is updated from them).
    """
    if fmt is None:
        with path.open("rb") as handle:
            fmt = detect_format(path.name, None, handle.read(4096))
    target = await repository.find_list(uow.conn, list_name, uow.tenant)
    read = _BytesRead()
    sent = None if on_progress is None else (lambda entries: on_progress(read.count, entries))
    # The list's own signal, so a file of the other signal is refused at its first line.
    signal = target.signal if target is not None else "phash"
    return await import_entries(
        uow,
        list_name=list_name,
        entries=read_entries(_lines(path, read), fmt, signal=signal),
        quality_floor=quality_floor,
        progress=sent,
    )


@functools.cache
def _shipped_corpus() -> Corpus:
    # The corpus is package data: read once per process, replayed for every candidate.
    return load_corpus(shipped_corpus())


async def check_candidate(text: str) -> Report:
    """The shipped red-team corpus replayed under a candidate policy (its TOML ``text``),
    which is only validated and decided with, never put in use.

    Raises the loader's ``PolicyError`` for a policy that does not validate.
    """
    # 0.1 s of pure computation for the whole corpus: run inline rather than in a thread.
    return await run_corpus(_shipped_corpus(), load_policy(text))
