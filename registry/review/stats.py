"""Moderation KPIs, computed from the decision, ticket and appeal tables.

Everything is read from the database, so every service process reports the same figures
(no per-process counters to add up). Classifier errors and latency come from the evidence
the gate stored with each decision (computed scores only: supplied scores have no latency).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import msgspec

from registry.core import db
from registry.gate import repository as gate_repository
from registry.review import repository

if TYPE_CHECKING:
    import asyncpg

    from registry.gate.repository import Spread

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


def _percentiles(spread: Spread) -> Percentiles:
    return Percentiles(
        count=spread.count,
        p50=None if spread.p50 is None else round(float(spread.p50), 3),
        p95=None if spread.p95 is None else round(float(spread.p95), 3),
    )


async def compute_stats(conn: asyncpg.Connection) -> Stats:
    now = await db.now(conn)
    by_status = await gate_repository.status_counts(conn)
    by_current = await gate_repository.current_status_counts(conn)
    by_reason = await gate_repository.reason_counts(conn)
    latency = await gate_repository.review_latency(conn)
    open_tickets, late_tickets = await gate_repository.open_ticket_counts(conn)
    filed, decided, overturned = await repository.appeal_counts(conn)
    total = sum(by_status.values())
    return Stats(
        generated_at=now,
        decisions=total,
        by_status=by_status,
        by_current_status=by_current,
        by_reason=by_reason,
        blocked_rate=round(by_status.get("blocked", 0) / total, 4) if total else None,
        review_latency_seconds=_percentiles(latency),
        open_tickets=open_tickets,
        open_tickets_past_deadline=late_tickets,
        appeals=AppealStats(
            filed=filed,
            decided=decided,
            overturned=overturned,
            overturn_rate=(round(overturned / decided, 4) if decided else None),
        ),
        classifiers=await _classifiers(conn),
    )


async def _classifiers(conn: asyncpg.Connection) -> list[ClassifierStats]:
    calls = await gate_repository.classifier_calls(conn)
    errors = await gate_repository.classifier_errors(conn)
    return [
        ClassifierStats(
            classifier=c.classifier,
            calls=c.latency_ms.count,
            errors=errors.get(c.classifier, {}),
            invalid_scores=c.invalid,
            latency_ms=_percentiles(c.latency_ms),
        )
        for c in calls
    ]
