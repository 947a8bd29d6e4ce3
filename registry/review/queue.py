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

from registry.consent import repository as consent_repository
from registry.core.auth import SYSTEM_TENANT
from registry.gate import repository as gate_repository
from registry.gate.repository.tickets import TicketKind, TicketStatus
from registry.review import repository
from registry.review.appeals import settle_appeal
from registry.review.errors import ConsentEnded, TicketClosed, TicketNotFound, TicketNotHeld
from registry.review.history import (
    DecisionStatus,
    HistoryEntry,
    HistoryEvent,
    decision_row,
    record_change,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

    from registry.gate.repository import TicketRow

_DECIDED_EVENT: dict[TicketKind, HistoryEvent] = {
    "review": "reviewed",
    "appeal": "appeal_decided",
    "report": "report_decided",
}

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


def _ticket(row: TicketRow, appeal_id: str | None) -> Ticket:
    held = row.status == "claimed"
    return Ticket(
        id=row.ticket_id,
        decision_id=row.decision_id,
        kind=row.kind,
        status=row.status,
        tier=row.tier,
        rank=row.rank,
        deadline=row.deadline,
        created_at=row.created_at,
        tenant=row.tenant,
        decision_status=row.current_status,
        reasons=row.reasons,
        appeal_id=appeal_id,
        claimed_by=row.claimed_by if held else None,
        lease_expires_at=row.lease_expires_at if held else None,
        closed_by=row.closed_by,
        closed_at=row.closed_at,
        outcome=row.outcome,
    )


async def _tickets(conn: asyncpg.Connection, rows: Sequence[TicketRow]) -> list[Ticket]:
    """The tickets with the appeal each was opened for (the appeals are review's own rows)."""
    appeals = await repository.appeal_ids_of_tickets(conn, [row.ticket_id for row in rows])
    return [_ticket(row, appeals.get(row.ticket_id)) for row in rows]


async def list_tickets(
    conn: asyncpg.Connection,
    *,
    scope: str | None,
    status: TicketStatus | None = None,
    limit: int = 100,
) -> list[Ticket]:
    """Tickets in queue order (rank, deadline, age), optionally of one effective status."""
    rows = await gate_repository.list_tickets(conn, scope=scope, status=status, limit=limit)
    return await _tickets(conn, rows)


async def get_ticket(
    conn: asyncpg.Connection, ticket_id: str, *, scope: str | None, lock: bool = False
) -> Ticket:
    ticket, _ = await _fetch(conn, ticket_id, scope=scope, lock=lock)
    return ticket


async def _fetch(
    conn: asyncpg.Connection, ticket_id: str, *, scope: str | None, lock: bool
) -> tuple[Ticket, bool]:
    row = await gate_repository.get_ticket(conn, ticket_id, scope=scope, lock=lock)
    if row is None:
        raise TicketNotFound("no ticket with this id for this reviewer")
    [ticket] = await _tickets(conn, [row])
    return ticket, row.lease_live


async def claim_next(
    conn: asyncpg.Connection, *, reviewer: str, scope: str | None, lease: timedelta
) -> Claimed | None:
    """Lease the next ticket by priority to ``reviewer``; None when there is none for them.

    Appeal tickets whose decision ``reviewer`` decided before are not theirs to take.
    """
    claimed = await gate_repository.claim_next_ticket(
        conn, reviewer=reviewer, scope=scope, lease=lease
    )
    if claimed is None:
        return None
    ticket_id, previous = claimed
    ticket = await get_ticket(conn, ticket_id, scope=None)
    return Claimed(ticket=ticket, reclaimed_from=previous)


async def _require_consent_now(conn: asyncpg.Connection, decision_id: str) -> None:
    """Refuse to allow an output whose consent ended since the gate ran.

    Refused outright, with no override: by then the publisher has had the registry's signed
    takedown notice for this output, and an `allowed` would contradict it. If the person
    consents again, a new token and a new gate decision are the way back. The tokens' rows
    are share-locked, so a withdrawal cannot commit between this check and the decision.
    """
    consents = await gate_repository.decision_consents(conn, decision_id)
    if not consents:
        return
    tokens = await consent_repository.lock_token_statuses(conn, sorted({c.jti for c in consents}))
    records = await consent_repository.consent_statuses(conn, [c.consent_id for c in consents])
    ended = sorted(
        {
            c.consent_id
            for c in consents
            if records.get(c.consent_id) != "active" or tokens.get(c.jti) != 0
        }
    )
    if ended:
        raise ConsentEnded(
            f"consent {', '.join(ended)} was withdrawn, erased or suspended (or its token "
            "revoked) after the gate ran; this output cannot be allowed. Block it, or ask for "
            "a new gate decision with a fresh token if the person consents again"
        )


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
    if outcome == "allowed":
        await _require_consent_now(conn, decision.decision_id)
    appeal_status = None
    if ticket.kind == "appeal" and ticket.appeal_id is not None:
        appeal_status = await settle_appeal(conn, ticket.appeal_id, outcome=outcome)
    if ticket.kind == "report":
        await repository.settle_report(conn, ticket.id, outcome=outcome)
    change = await record_change(
        conn,
        decision_id=decision.decision_id,
        event=_DECIDED_EVENT[ticket.kind],
        from_status=decision.current_status,
        to_status=outcome,
        actor=reviewer,
        note=note,
        ticket_id=ticket.id,
        appeal_id=ticket.appeal_id,
    )
    await gate_repository.close_ticket(
        conn, ticket.id, closed_by=reviewer, closed_at=change.at, outcome=outcome
    )
    closed = await get_ticket(conn, ticket.id, scope=None)
    return TicketDecided(ticket=closed, change=change, appeal_status=appeal_status)
