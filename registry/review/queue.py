"""The human review queue: tickets, leases, priority, and a reviewer's decision.

A reviewer claims the next ticket by priority (rank, then deadline, then age) and holds it for
a lease. Claiming locks the chosen row with ``FOR UPDATE SKIP LOCKED`` inside one UPDATE, so
two reviewers, in one process or many, never get the same ticket: the second skips the row
the first has locked and takes the next. A lease that runs out puts the ticket back in the
queue without any sweeper: an expired claim is simply claimable again.

Who sees what: reviewers are the operator's staff. A reviewer client in the operator's
tenant (``system``) works the queue of every tenant; a reviewer client created inside a
publisher's tenant sees and claims only that tenant's tickets (:func:`review_scope`).
"""

from __future__ import annotations

from datetime import datetime, timedelta  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from registry.core.auth import SYSTEM_TENANT
from registry.review.appeals import settle_appeal
from registry.review.errors import TicketClosed, TicketNotFound, TicketNotHeld
from registry.review.history import DecisionStatus, HistoryEntry, decision_row, record_change

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "Claimed",
    "Outcome",
    "Ticket",
    "TicketDecided",
    "TicketKind",
    "TicketStatus",
    "claim_next",
    "decide_ticket",
    "get_ticket",
    "list_tickets",
    "review_scope",
]

TicketKind: TypeAlias = Literal["review", "appeal"]
TicketStatus: TypeAlias = Literal["open", "claimed", "closed"]
Outcome: TypeAlias = Literal["allowed", "blocked"]


class Ticket(msgspec.Struct, kw_only=True, frozen=True):
    """A ticket as a reviewer sees it. ``status`` is effective: an expired claim is ``open``."""

    id: str
    decision_id: str
    kind: TicketKind
    status: TicketStatus
    tier: str
    rank: int
    deadline: datetime
    created_at: datetime
    tenant: str
    decision_status: DecisionStatus
    """The decision's current status."""
    reasons: tuple[str, ...]
    appeal_id: str | None = None
    claimed_by: str | None = None
    lease_expires_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None


class Claimed(msgspec.Struct, kw_only=True, frozen=True):
    ticket: Ticket
    reclaimed_from: str | None
    """The reviewer whose lease had run out, when the ticket was taken back from one."""


class TicketDecided(msgspec.Struct, kw_only=True, frozen=True):
    ticket: Ticket
    change: HistoryEntry
    appeal_status: Literal["upheld", "overturned"] | None = None


def review_scope(tenant: str) -> str | None:
    """The tenant whose tickets a reviewer of ``tenant`` works; None means every tenant."""
    return None if tenant == SYSTEM_TENANT else tenant


_EFFECTIVE_STATUS = (
    "CASE WHEN t.status = 'claimed' AND t.lease_expires_at <= now() THEN 'open' ELSE t.status END"
)
_SELECT = (
    f"SELECT t.ticket_id, t.decision_id, t.kind, {_EFFECTIVE_STATUS} AS status, t.tier,"  # noqa: S608 - constant text
    " t.rank, t.deadline, t.created_at, d.tenant, d.current_status, d.reasons, a.appeal_id,"
    " t.claimed_by, t.lease_expires_at, t.closed_by, t.closed_at, t.outcome,"
    " (t.lease_expires_at > now()) AS lease_live"
    " FROM review_tickets t JOIN moderation_decisions d USING (decision_id)"
    " LEFT JOIN review_appeals a ON a.ticket_id = t.ticket_id"
)


def _ticket(row: asyncpg.Record) -> Ticket:
    held = row["status"] == "claimed"
    return Ticket(
        id=row["ticket_id"],
        decision_id=row["decision_id"],
        kind=row["kind"],
        status=row["status"],
        tier=row["tier"],
        rank=row["rank"],
        deadline=row["deadline"],
        created_at=row["created_at"],
        tenant=row["tenant"],
        decision_status=row["current_status"],
        reasons=tuple(row["reasons"]),
        appeal_id=row["appeal_id"],
        claimed_by=row["claimed_by"] if held else None,
        lease_expires_at=row["lease_expires_at"] if held else None,
        closed_by=row["closed_by"],
        closed_at=row["closed_at"],
        outcome=row["outcome"],
    )


async def list_tickets(
    conn: asyncpg.Connection,
    *,
    scope: str | None,
    status: TicketStatus | None = None,
    limit: int = 100,
) -> list[Ticket]:
    """Tickets in queue order (rank, deadline, age), optionally of one effective status."""
    rows = await conn.fetch(
        _SELECT + " WHERE ($1::text IS NULL OR d.tenant = $1)"
        f" AND ($2::text IS NULL OR {_EFFECTIVE_STATUS} = $2)"
        " ORDER BY t.rank, t.deadline, t.created_at, t.ticket_id LIMIT $3",
        scope,
        status,
        limit,
    )
    return [_ticket(r) for r in rows]


async def get_ticket(
    conn: asyncpg.Connection, ticket_id: str, *, scope: str | None, lock: bool = False
) -> Ticket:
    ticket, _ = await _fetch(conn, ticket_id, scope=scope, lock=lock)
    return ticket


async def _fetch(
    conn: asyncpg.Connection, ticket_id: str, *, scope: str | None, lock: bool
) -> tuple[Ticket, bool]:
    row = await conn.fetchrow(
        _SELECT
        + " WHERE t.ticket_id = $1 AND ($2::text IS NULL OR d.tenant = $2)"
        + (" FOR UPDATE OF t" if lock else ""),
        ticket_id,
        scope,
    )
    if row is None:
        raise TicketNotFound("no ticket with this id for this reviewer")
    return _ticket(row), bool(row["lease_live"])


async def claim_next(
    conn: asyncpg.Connection, *, reviewer: str, scope: str | None, lease: timedelta
) -> Claimed | None:
    """Lease the next ticket by priority to ``reviewer``; None when there is none for them.

    Appeal tickets whose decision ``reviewer`` decided before are not theirs to take.
    """
    row = await conn.fetchrow(
        """
        WITH next AS (
            SELECT t.ticket_id, t.claimed_by AS previous
            FROM review_tickets t JOIN moderation_decisions d USING (decision_id)
            WHERE (t.status = 'open' OR (t.status = 'claimed' AND t.lease_expires_at <= now()))
              AND NOT ($1 = ANY (t.excluded_reviewers))
              AND ($2::text IS NULL OR d.tenant = $2)
            ORDER BY t.rank, t.deadline, t.created_at, t.ticket_id
            LIMIT 1
            FOR UPDATE OF t SKIP LOCKED
        )
        UPDATE review_tickets t
        SET status = 'claimed', claimed_by = $1, claimed_at = now(),
            lease_expires_at = now() + $3::interval
        FROM next WHERE t.ticket_id = next.ticket_id
        RETURNING t.ticket_id, next.previous
        """,
        reviewer,
        scope,
        lease,
    )
    if row is None:
        return None
    ticket = await get_ticket(conn, row["ticket_id"], scope=None)
    return Claimed(ticket=ticket, reclaimed_from=row["previous"])


async def decide_ticket(
    conn: asyncpg.Connection,
    *,
    ticket_id: str,
    reviewer: str,
    scope: str | None,
    outcome: Outcome,
    note: str,
) -> TicketDecided:
    """Decide a ticket the reviewer holds: the decision's status, history, appeal, ticket."""
    ticket, lease_live = await _fetch(conn, ticket_id, scope=scope, lock=True)
    if ticket.status == "closed":
        raise TicketClosed("this ticket was decided already")
    if ticket.status != "claimed" or ticket.claimed_by != reviewer or not lease_live:
        raise TicketNotHeld("claim the ticket first; decisions come from the lease holder")
    decision = await decision_row(conn, ticket.decision_id, tenant=None, lock=True)
    appeal_status = None
    if ticket.kind == "appeal" and ticket.appeal_id is not None:
        appeal_status = await settle_appeal(conn, ticket.appeal_id, outcome=outcome)
    change = await record_change(
        conn,
        decision_id=decision.decision_id,
        event="appeal_decided" if ticket.kind == "appeal" else "reviewed",
        from_status=decision.current_status,
        to_status=outcome,
        actor=reviewer,
        note=note,
        ticket_id=ticket.id,
        appeal_id=ticket.appeal_id,
    )
    await conn.execute(
        "UPDATE review_tickets SET status = 'closed', closed_by = $2, closed_at = $3,"
        " outcome = $4 WHERE ticket_id = $1",
        ticket.id,
        reviewer,
        change.at,
        outcome,
    )
    closed = await get_ticket(conn, ticket.id, scope=None)
    return TicketDecided(ticket=closed, change=change, appeal_status=appeal_status)
