"""Figures for the admin view that the moderation stats do not already hold."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import TYPE_CHECKING

import msgspec

from registry.core import db
from registry.gate import repository as gate_repository

if TYPE_CHECKING:
    import asyncpg

__all__ = ["DayCounts", "decisions_by_day"]


class DayCounts(msgspec.Struct, kw_only=True, frozen=True):
    day: date
    allowed: int = 0
    review: int = 0
    blocked: int = 0

    @property
    def total(self) -> int:
        return self.allowed + self.review + self.blocked


async def decisions_by_day(conn: asyncpg.Connection, *, days: int = 14) -> tuple[DayCounts, ...]:
    """The gate's outcomes per UTC day over the last ``days`` days, oldest first, gaps as 0."""
    today = (await db.now(conn)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    counts: dict[date, dict[str, int]] = {}
    for day, status, n in await gate_repository.outcomes_since(conn, first):
        counts.setdefault(day, {})[status] = n
    return tuple(
        DayCounts(day=day, **counts.get(day, {}))
        for day in (first + timedelta(days=offset) for offset in range(days))
    )
