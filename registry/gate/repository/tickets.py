"""Review tickets (``review_tickets``): opened by the gate with a ``review`` decision, or by
an appeal; claimed, leased and closed by the review queue (``registry.review.queue``).

Every read joins the ticket's decision: its tenant scopes the queue, its current status and
reasons are what a reviewer sees first.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from moderation import Status  # noqa: TC001 - msgspec reads annotations at runtime

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "TicketKind",
    "TicketRow",
    "claim_next_ticket",
    "close_ticket",
    "get_ticket",
    "list_tickets",
    "open_review_ticket",
    "review_ticket_of",
    "reviewers_of",
]

TicketKind: TypeAlias = Literal["review", "appeal", "report"]
TicketStatus: TypeAlias = Literal["open", "claimed", "closed"]

_EFFECTIVE_STATUS = (
    "CASE WHEN t.status = 'claimed' AND t.lease_expires_at <= now() THEN 'open' ELSE t.status END"
)
_SELECT = (
    f"SELECT t.ticket_id, t.decision_id, t.kind, {_EFFECTIVE_STATUS} AS status, t.tier,"  # noqa: S608 - constant text
    " t.rank, t.deadline, t.created_at, d.tenant, d.current_status, d.reasons,"
    " t.claimed_by, t.lease_expires_at, t.closed_by, t.closed_at, t.outcome,"
    " (t.lease_expires_at > now()) AS lease_live"
    " FROM review_tickets t JOIN moderation_decisions d USING (decision_id)"
)


class TicketRow(msgspec.Struct, kw_only=True, frozen=True):
    """A ticket with its decision's tenant, current status and reasons.

    ``status`` is effective (a claim whose lease ran out is ``open``); ``lease_live`` tells
    whether the stored claim's lease is still running.
    """

    ticket_id: str
    decision_id: str
    kind: TicketKind
    status: TicketStatus
    tier: str
    rank: int
    deadline: datetime
    created_at: datetime
    tenant: str
    current_status: Status
    reasons: tuple[str, ...]
    claimed_by: str | None
    lease_expires_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    outcome: Literal["allowed", "blocked"] | None
    lease_live: bool


def _ticket(row: asyncpg.Record) -> TicketRow:
    values = dict(row)
    values["reasons"] = tuple(values["reasons"])
    values["lease_live"] = bool(values["lease_live"])
    return TicketRow(**values)


async def open_review_ticket(
    conn: asyncpg.Connection,
    *,
    decision_id: str,
    kind: TicketKind,
    tier: str,
    rank: int,
    deadline: datetime,
    excluded_reviewers: Sequence[str] = (),
) -> str:
    """Open a ticket for ``decision_id``; call in the transaction that records why.

    ``excluded_reviewers`` may not claim it (an appeal's earlier reviewers).
    """
    ticket_id = "tkt_" + secrets.token_urlsafe(16)
    await conn.execute(
        "INSERT INTO review_tickets (ticket_id, decision_id, kind, tier, rank, deadline,"
        " excluded_reviewers) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        ticket_id,
        decision_id,
        kind,
        tier,
        rank,
        deadline,
        list(excluded_reviewers),
    )
    return ticket_id


async def review_ticket_of(conn: asyncpg.Connection, decision_id: str) -> str | None:
    ticket: str | None = await conn.fetchval(
        "SELECT ticket_id FROM review_tickets WHERE decision_id = $1 AND kind = 'review'"
        " ORDER BY created_at LIMIT 1",
        decision_id,
    )
    return ticket


async def reviewers_of(conn: asyncpg.Connection, decision_id: str) -> tuple[str, ...]:
    """Who closed the decision's tickets so far, sorted."""
    rows = await conn.fetch(
        "SELECT DISTINCT closed_by FROM review_tickets"
        " WHERE decision_id = $1 AND status = 'closed' ORDER BY closed_by",
        decision_id,
    )
    return tuple(r["closed_by"] for r in rows)


async def list_tickets(
    conn: asyncpg.Connection,
    *,
    scope: str | None,
    status: TicketStatus | None = None,
    limit: int = 100,
) -> list[TicketRow]:
    """Tickets of ``scope``'s decisions (every tenant's when None) in queue order (rank,
    deadline, age), optionally of one effective status."""
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
) -> TicketRow | None:
    """The ticket if its decision is ``scope``'s (any when None); ``lock`` locks the ticket."""
    row = await conn.fetchrow(
        _SELECT
        + " WHERE t.ticket_id = $1 AND ($2::text IS NULL OR d.tenant = $2)"
        + (" FOR UPDATE OF t" if lock else ""),
        ticket_id,
        scope,
    )
    return None if row is None else _ticket(row)


async def claim_next_ticket(
    conn: asyncpg.Connection, *, reviewer: str, scope: str | None, lease: timedelta
) -> tuple[str, str | None] | None:
    """Lease the next claimable ticket by priority to ``reviewer``: its id and the reviewer
    whose lease had run out (if any); None when there is none for them.

    One statement: the chosen row is locked with ``FOR UPDATE SKIP LOCKED``, so two
    reviewers never get the same ticket.
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
    return None if row is None else (row["ticket_id"], row["previous"])


async def close_ticket(
    conn: asyncpg.Connection,
    ticket_id: str,
    *,
    closed_by: str,
    closed_at: datetime,
    outcome: Literal["allowed", "blocked"],
) -> None:
    await conn.execute(
        "UPDATE review_tickets SET status = 'closed', closed_by = $2, closed_at = $3,"
        " outcome = $4 WHERE ticket_id = $1",
        ticket_id,
        closed_by,
        closed_at,
        outcome,
    )
