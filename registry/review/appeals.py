"""Appeals: a publisher asks, on behalf of its user, for a blocked decision to be looked at again.

A decision is appealed once, and only while it blocks publication (``current_status`` is
``blocked``): an allowed decision has nothing to appeal, and one in review is still waiting
for its first human. The appeal opens a ticket of kind ``appeal`` that no reviewer who
decided this decision before may claim, ranked by the active policy's tiers for the
decision's reasons. The reviewer who takes it decides ``allowed`` (the appeal is
``overturned``) or ``blocked`` (``upheld``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from registry.gate.repository import open_review_ticket
from registry.review.errors import AppealExists, DecisionNotAppealable
from registry.review.history import DecisionStatus, HistoryEntry, decision_row, record_change

if TYPE_CHECKING:
    import asyncpg

    from moderation import Policy
    from moderation.policy import ReviewTier

__all__ = [
    "Appeal",
    "AppealFiled",
    "AppealStatus",
    "appeal_of",
    "appeal_route",
    "file_appeal",
    "settle_appeal",
]

AppealStatus: TypeAlias = Literal["open", "upheld", "overturned"]


class Appeal(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    decision_id: str
    ticket_id: str
    client_id: str
    statement: str
    appealed_status: DecisionStatus
    status: AppealStatus
    created_at: datetime
    decided_at: datetime | None = None


class AppealFiled(msgspec.Struct, kw_only=True, frozen=True):
    appeal: Appeal
    change: HistoryEntry
    tier: str
    deadline: datetime
    excluded_reviewers: tuple[str, ...]


def appeal_route(
    policy: Policy, reasons: tuple[str, ...], *, now: datetime
) -> tuple[int, ReviewTier, datetime]:
    """The most urgent tier among the decision's reasons (the default tier when none)."""
    review = policy.review
    ranked = [review.tier_for(code) for code in reasons]
    if not ranked:
        ranked = [(i, t) for i, t in enumerate(review.tiers) if t.name == review.default_tier]
    rank, tier = min(ranked, key=lambda pair: pair[0])
    return rank, tier, now + timedelta(minutes=tier.deadline_minutes)


async def file_appeal(
    conn: asyncpg.Connection,
    *,
    client_id: str,
    tenant: str,
    decision_id: str,
    statement: str,
    policy: Policy,
) -> AppealFiled:
    """File the appeal and open its ticket. Other tenants' decisions are not found."""
    decision = await decision_row(conn, decision_id, tenant=tenant, lock=True)
    if await conn.fetchval("SELECT 1 FROM review_appeals WHERE decision_id = $1", decision_id):
        raise AppealExists("this decision has been appealed already")
    if decision.current_status != "blocked":
        raise DecisionNotAppealable(
            f"the decision is {decision.current_status}; only a blocked decision can be appealed"
        )
    now: datetime = await conn.fetchval("SELECT now()")
    rank, tier, deadline = appeal_route(policy, decision.reasons, now=now)
    excluded = tuple(
        r["closed_by"]
        for r in await conn.fetch(
            "SELECT DISTINCT closed_by FROM review_tickets"
            " WHERE decision_id = $1 AND status = 'closed' ORDER BY closed_by",
            decision_id,
        )
    )
    ticket_id = await open_review_ticket(
        conn, decision_id=decision_id, kind="appeal", tier=tier.name, rank=rank, deadline=deadline
    )
    if excluded:
        await conn.execute(
            "UPDATE review_tickets SET excluded_reviewers = $2 WHERE ticket_id = $1",
            ticket_id,
            list(excluded),
        )
    appeal_id = "apl_" + secrets.token_urlsafe(16)
    await conn.execute(
        "INSERT INTO review_appeals (appeal_id, decision_id, ticket_id, client_id, tenant,"
        " statement, appealed_status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        appeal_id,
        decision_id,
        ticket_id,
        client_id,
        decision.tenant,
        statement,
        decision.current_status,
        now,
    )
    change = await record_change(
        conn,
        decision_id=decision_id,
        event="appealed",
        from_status=decision.current_status,
        to_status=decision.current_status,
        actor=client_id,
        note=None,
        ticket_id=ticket_id,
        appeal_id=appeal_id,
    )
    appeal = Appeal(
        id=appeal_id,
        decision_id=decision_id,
        ticket_id=ticket_id,
        client_id=client_id,
        statement=statement,
        appealed_status=decision.current_status,
        status="open",
        created_at=now,
    )
    return AppealFiled(
        appeal=appeal,
        change=change,
        tier=tier.name,
        deadline=deadline,
        excluded_reviewers=excluded,
    )


async def settle_appeal(
    conn: asyncpg.Connection, appeal_id: str, *, outcome: DecisionStatus
) -> Literal["upheld", "overturned"]:
    """Record what the appeal came to: ``overturned`` when the outcome differs."""
    status: Literal["upheld", "overturned"] = await conn.fetchval(
        "UPDATE review_appeals SET status = CASE WHEN appealed_status = $2 THEN 'upheld'"
        " ELSE 'overturned' END, decided_at = now() WHERE appeal_id = $1 AND status = 'open'"
        " RETURNING status",
        appeal_id,
        outcome,
    )
    return status


async def appeal_of(
    conn: asyncpg.Connection, decision_id: str, *, tenant: str | None
) -> Appeal | None:
    """The decision's appeal, if it has one and it belongs to ``tenant`` (any when None)."""
    row = await conn.fetchrow(
        "SELECT appeal_id, decision_id, ticket_id, client_id, statement, appealed_status,"
        " status, created_at, decided_at FROM review_appeals"
        " WHERE decision_id = $1 AND ($2::text IS NULL OR tenant = $2)",
        decision_id,
        tenant,
    )
    if row is None:
        return None
    return Appeal(
        id=row["appeal_id"],
        decision_id=row["decision_id"],
        ticket_id=row["ticket_id"],
        client_id=row["client_id"],
        statement=row["statement"],
        appealed_status=row["appealed_status"],
        status=row["status"],
        created_at=row["created_at"],
        decided_at=row["decided_at"],
    )
