"""Counts over the gate's decisions and tickets, for the moderation KPIs
(``registry.review.stats``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "ClassifierCalls",
    "Spread",
    "classifier_calls",
    "classifier_errors",
    "current_status_counts",
    "open_ticket_counts",
    "reason_counts",
    "review_latency",
    "status_counts",
]

# One row per computed classifier result stored in a decision's evidence.
_CALLS = """
    SELECT c->>'classifier' AS classifier, c->>'error' AS error,
           (c->>'latency_ms')::float8 AS latency_ms,
           coalesce(jsonb_array_length(c->'invalid'), 0) AS invalid
    FROM moderation_decisions d, jsonb_array_elements(d.evidence->'classifiers') AS c
    WHERE c->>'origin' = 'computed'
"""


class Spread(msgspec.Struct, kw_only=True, frozen=True):
    """How many values, and their median and 95th percentile (None without values)."""

    count: int
    p50: float | None
    p95: float | None


class ClassifierCalls(msgspec.Struct, kw_only=True, frozen=True):
    classifier: str
    invalid: int
    """Scores the classifier returned that were refused."""
    latency_ms: Spread


def _spread(row: asyncpg.Record) -> Spread:
    return Spread(count=row["n"], p50=row["p50"], p95=row["p95"])


async def status_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Decisions by the gate's own outcome."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM moderation_decisions GROUP BY status ORDER BY 1"
    )
    return {r["status"]: r["n"] for r in rows}


async def current_status_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Decisions by their outcome after reviews and appeals."""
    rows = await conn.fetch(
        "SELECT current_status, count(*) AS n FROM moderation_decisions"
        " GROUP BY current_status ORDER BY 1"
    )
    return {r["current_status"]: r["n"] for r in rows}


async def reason_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Decisions carrying each reason code."""
    rows = await conn.fetch(
        "SELECT reason, count(*) AS n FROM moderation_decisions, unnest(reasons) AS reason"
        " GROUP BY reason ORDER BY 1"
    )
    return {r["reason"]: r["n"] for r in rows}


async def review_latency(conn: asyncpg.Connection) -> Spread:
    """Seconds from a review ticket's opening to its decision, over decided review tickets."""
    # Aggregates without GROUP BY always return exactly one row.
    [row] = await conn.fetch(
        "SELECT count(*) AS n,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))"
        " AS p50,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))"
        " AS p95 FROM review_tickets WHERE kind = 'review' AND status = 'closed'"
    )
    return _spread(row)


async def open_ticket_counts(conn: asyncpg.Connection) -> tuple[int, int]:
    """Tickets not yet decided, and how many of those are past their deadline."""
    [row] = await conn.fetch(
        "SELECT count(*) AS open, count(*) FILTER (WHERE deadline < now()) AS late"
        " FROM review_tickets WHERE status <> 'closed'"
    )
    return row["open"], row["late"]


async def classifier_calls(conn: asyncpg.Connection) -> list[ClassifierCalls]:
    """Each classifier's computed results: how many, refused scores, latency; by name."""
    rows = await conn.fetch(
        f"SELECT classifier, count(*) AS n, sum(invalid) AS invalid,"  # noqa: S608 - constant
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95"
        f" FROM ({_CALLS}) calls GROUP BY classifier ORDER BY classifier"
    )
    return [
        ClassifierCalls(
            classifier=r["classifier"], invalid=int(r["invalid"] or 0), latency_ms=_spread(r)
        )
        for r in rows
    ]


async def classifier_errors(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Failed classifier calls by classifier and error code."""
    errors: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(
        f"SELECT classifier, error, count(*) AS n FROM ({_CALLS}) calls"  # noqa: S608 - constant
        " WHERE error IS NOT NULL GROUP BY classifier, error ORDER BY 1, 2"
    ):
        errors.setdefault(r["classifier"], {})[r["error"]] = r["n"]
    return errors
