"""Figures for the admin view that the moderation stats do not already hold."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import msgspec

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
    today: date = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    first = today - timedelta(days=days - 1)
    rows = await conn.fetch(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS n"
        " FROM moderation_decisions WHERE created_at >= $1::date AT TIME ZONE 'UTC'"
        " GROUP BY 1, 2",
        first,
    )
    counts: dict[date, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["day"], {})[row["status"]] = row["n"]
    return tuple(
        DayCounts(day=day, **counts.get(day, {}))
        for day in (first + timedelta(days=offset) for offset in range(days))
    )
