"""Moderation KPIs, computed from the decision, ticket and appeal tables.

Everything is read from the database, so every service process reports the same figures
(no per-process counters to add up). Classifier errors and latency come from the evidence
the gate stored with each decision (computed scores only: supplied scores have no latency).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import asyncpg

__all__ = ["AppealStats", "ClassifierStats", "Percentiles", "Stats", "compute_stats"]


class Percentiles(msgspec.Struct, kw_only=True, frozen=True):
    count: int
    p50: float | None
    p95: float | None


class AppealStats(msgspec.Struct, kw_only=True, frozen=True):
    filed: int
    decided: int
    overturned: int
    overturn_rate: float | None
    """Overturned / decided; None before any appeal was decided."""


class ClassifierStats(msgspec.Struct, kw_only=True, frozen=True):
    classifier: str
    calls: int
    errors: dict[str, int]
    """Failed calls by error code (timeout, http_status, circuit_open, ...)."""
    invalid_scores: int
    latency_ms: Percentiles


class Stats(msgspec.Struct, kw_only=True, frozen=True):
    generated_at: datetime
    decisions: int
    by_status: dict[str, int]
    """The gate's own outcomes."""
    by_current_status: dict[str, int]
    """Outcomes after reviews and appeals."""
    by_reason: dict[str, int]
    """Decisions carrying each reason code."""
    blocked_rate: float | None
    review_latency_seconds: Percentiles
    """From a ticket's opening to its decision, over decided review tickets."""
    open_tickets: int
    open_tickets_past_deadline: int
    appeals: AppealStats
    classifiers: list[ClassifierStats]


def _percentiles(row: asyncpg.Record) -> Percentiles:
    return Percentiles(
        count=row["n"],
        p50=None if row["p50"] is None else round(float(row["p50"]), 3),
        p95=None if row["p95"] is None else round(float(row["p95"]), 3),
    )


async def compute_stats(conn: asyncpg.Connection) -> Stats:
    now: datetime = await conn.fetchval("SELECT now()")
    by_status = {
        r["status"]: r["n"]
        for r in await conn.fetch(
            "SELECT status, count(*) AS n FROM moderation_decisions GROUP BY status ORDER BY 1"
        )
    }
    by_current = {
        r["current_status"]: r["n"]
        for r in await conn.fetch(
            "SELECT current_status, count(*) AS n FROM moderation_decisions"
            " GROUP BY current_status ORDER BY 1"
        )
    }
    by_reason = {
        r["reason"]: r["n"]
        for r in await conn.fetch(
            "SELECT reason, count(*) AS n FROM moderation_decisions, unnest(reasons) AS reason"
            " GROUP BY reason ORDER BY 1"
        )
    }
    # Aggregates without GROUP BY always return exactly one row.
    [latency] = await conn.fetch(
        "SELECT count(*) AS n,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))"
        " AS p50,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))"
        " AS p95 FROM review_tickets WHERE kind = 'review' AND status = 'closed'"
    )
    [tickets] = await conn.fetch(
        "SELECT count(*) AS open, count(*) FILTER (WHERE deadline < now()) AS late"
        " FROM review_tickets WHERE status <> 'closed'"
    )
    [appeals] = await conn.fetch(
        "SELECT count(*) AS filed, count(*) FILTER (WHERE status <> 'open') AS decided,"
        " count(*) FILTER (WHERE status = 'overturned') AS overturned FROM review_appeals"
    )
    total = sum(by_status.values())
    return Stats(
        generated_at=now,
        decisions=total,
        by_status=by_status,
        by_current_status=by_current,
        by_reason=by_reason,
        blocked_rate=round(by_status.get("blocked", 0) / total, 4) if total else None,
        review_latency_seconds=_percentiles(latency),
        open_tickets=tickets["open"],
        open_tickets_past_deadline=tickets["late"],
        appeals=AppealStats(
            filed=appeals["filed"],
            decided=appeals["decided"],
            overturned=appeals["overturned"],
            overturn_rate=(
                round(appeals["overturned"] / appeals["decided"], 4) if appeals["decided"] else None
            ),
        ),
        classifiers=await _classifiers(conn),
    )


async def _classifiers(conn: asyncpg.Connection) -> list[ClassifierStats]:
    calls = """
        SELECT c->>'classifier' AS classifier, c->>'error' AS error,
               (c->>'latency_ms')::float8 AS latency_ms,
               coalesce(jsonb_array_length(c->'invalid'), 0) AS invalid
        FROM moderation_decisions d, jsonb_array_elements(d.evidence->'classifiers') AS c
        WHERE c->>'origin' = 'computed'
    """
    rows = await conn.fetch(
        f"SELECT classifier, count(*) AS n, sum(invalid) AS invalid,"  # noqa: S608 - constant
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95"
        f" FROM ({calls}) calls GROUP BY classifier ORDER BY classifier"
    )
    errors: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(
        f"SELECT classifier, error, count(*) AS n FROM ({calls}) calls"  # noqa: S608 - constant
        " WHERE error IS NOT NULL GROUP BY classifier, error ORDER BY 1, 2"
    ):
        errors.setdefault(r["classifier"], {})[r["error"]] = r["n"]
    return [
        ClassifierStats(
            classifier=r["classifier"],
            calls=r["n"],
            errors=errors.get(r["classifier"], {}),
            invalid_scores=int(r["invalid"] or 0),
            latency_ms=_percentiles(r),
        )
        for r in rows
    ]
