"""Moderation KPIs, computed from the decision, ticket and appeal tables.

Everything is read from the database, so every service process reports the same figures
(no per-process counters to add up). Classifier errors and latency come from the evidence
the gate stored with each decision (computed scores only: supplied scores have no latency).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from registry.core import db
from registry.gate import repository as gate_repository
from registry.gate.repository import ClientRepeats
from registry.gate.repository import misuse as misuse_repository
from registry.review import repository

if TYPE_CHECKING:
    import asyncpg

    from registry.gate.repository import Spread

__all__ = [
    "DEFAULT_WINDOW_DAYS",
    "AppealStats",
    "ClassifierStats",
    "Percentiles",
    "PolicyVersionStats",
    "Recidivism",
    "Stats",
    "compute_stats",
]

# The window of the recidivism and per-policy-version figures unless the caller asks for
# another: long enough for a repeat offender to show, short enough to follow a policy change.
DEFAULT_WINDOW_DAYS = 30
# Clients listed under recidivism, most blocked first.
_TOP_CLIENTS = 20


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


class Recidivism(msgspec.Struct, kw_only=True, frozen=True):
    """Repeat blocked decisions over the window, per end user and per client.

    End users are counted by the blind index of the gate request's ``user_id`` (per tenant);
    no user id is shown. Requests without a ``user_id`` count for their client only.
    """

    window_days: int
    blocked_users: int
    repeat_users: int
    """End users with two or more blocked decisions."""
    repeat_blocks: int
    """Blocked decisions of repeat users beyond each one's first."""
    repeat_user_rate: float | None
    """Repeat users / users with any block; None without blocked users."""
    clients: list[ClientRepeats]
    """The clients with the most blocked decisions (at most 20)."""


class PolicyVersionStats(msgspec.Struct, kw_only=True, frozen=True):
    """How one policy version's decisions fared with humans, over the window.

    False positives: decided appeals that overturned a block. False negatives: publish
    decisions the gate allowed that a reviewer blocked after a report.
    """

    policy_version: str
    policy_label: str | None
    decisions: int
    allowed_by_gate: int
    appeals_decided: int
    appeals_overturned: int
    false_positive_rate: float | None
    """Overturned / decided appeals; None before any was decided."""
    reports_decided: int
    reports_confirmed: int
    false_negative_rate: float | None
    """Confirmed reports / publish decisions the gate allowed; None without any allowed."""


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
    # Defaults only so that a KPI snapshot stored before these figures existed still reads;
    # compute_stats always fills them.
    recidivism: Recidivism | None = None
    policy_versions: list[PolicyVersionStats] = msgspec.field(default_factory=list)
    stops: Stops | None = None
    """The kill-switches in force now (``registry.gate.misuse``)."""


class Stops(msgspec.Struct, kw_only=True, frozen=True):
    suspended_clients: int
    suspended_models: int
    paused_features: list[str]


def _percentiles(spread: Spread) -> Percentiles:
    return Percentiles(
        count=spread.count,
        p50=None if spread.p50 is None else round(float(spread.p50), 3),
        p95=None if spread.p95 is None else round(float(spread.p95), 3),
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def compute_stats(
    conn: asyncpg.Connection, *, window_days: int = DEFAULT_WINDOW_DAYS
) -> Stats:
    now = await db.now(conn)
    since = now - timedelta(days=window_days)
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
        recidivism=await _recidivism(conn, since=since, window_days=window_days),
        policy_versions=await _policy_versions(conn, since=since),
        stops=await _stops(conn),
    )


async def _stops(conn: asyncpg.Connection) -> Stops:
    active = await misuse_repository.active_subjects(conn)
    return Stops(
        suspended_clients=sum(1 for kind, _ in active if kind == "client"),
        suspended_models=sum(1 for kind, _ in active if kind == "model"),
        paused_features=[row.feature for row in await misuse_repository.switches(conn)],
    )


async def _recidivism(conn: asyncpg.Connection, *, since: datetime, window_days: int) -> Recidivism:
    users = await gate_repository.user_repeats(conn, since=since)
    return Recidivism(
        window_days=window_days,
        blocked_users=users.blocked_users,
        repeat_users=users.repeat_users,
        repeat_blocks=users.repeat_blocks,
        repeat_user_rate=_rate(users.repeat_users, users.blocked_users),
        clients=await gate_repository.client_repeats(conn, since=since, limit=_TOP_CLIENTS),
    )


async def _policy_versions(
    conn: asyncpg.Connection, *, since: datetime
) -> list[PolicyVersionStats]:
    """The gate's counts and the humans' outcomes, joined on the policy version."""
    made = {v.policy_version: v for v in await gate_repository.version_decisions(conn, since=since)}
    judged = {
        v.policy_version: v for v in await repository.outcomes_by_policy_version(conn, since=since)
    }
    out = []
    for version in sorted(made.keys() | judged.keys()):
        gate = made.get(version)
        humans = judged.get(version)
        allowed = gate.allowed_by_gate if gate else 0
        appeals_decided = humans.appeals_decided if humans else 0
        overturned = humans.appeals_overturned if humans else 0
        confirmed = humans.reports_confirmed if humans else 0
        out.append(
            PolicyVersionStats(
                policy_version=version,
                policy_label=gate.policy_label if gate else None,
                decisions=gate.decisions if gate else 0,
                allowed_by_gate=allowed,
                appeals_decided=appeals_decided,
                appeals_overturned=overturned,
                false_positive_rate=_rate(overturned, appeals_decided),
                reports_decided=humans.reports_decided if humans else 0,
                reports_confirmed=confirmed,
                false_negative_rate=_rate(confirmed, allowed),
            )
        )
    return out


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
