"""What a reviewer does, with its audit event: one place for the API and the console alike.

Each runs in the caller's unit of work, acting as the reviewer; the event is recorded under
the ticket's tenant (a system reviewer decides any tenant's tickets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from registry.review.queue import claim_next, decide_ticket, review_scope

if TYPE_CHECKING:
    from datetime import timedelta

    from registry.core.auth import Client
    from registry.core.uow import UnitOfWork
    from registry.review.queue import Claimed, Outcome, TicketDecided

Via = Literal["api", "console"]


async def claim(uow: UnitOfWork, *, reviewer: Client, lease: timedelta, via: Via) -> Claimed | None:
    """Lease the next ticket to ``reviewer`` and record it; None when there is none."""
    claimed = await claim_next(
        uow.conn, reviewer=reviewer.client_id, scope=review_scope(reviewer.tenant), lease=lease
    )
    if claimed is None:
        return None
    ticket = claimed.ticket
    payload: dict[str, Any] = {
        "decision_id": ticket.decision_id,
        "kind": ticket.kind,
        "lease_expires_at": ticket.lease_expires_at.isoformat()
        if ticket.lease_expires_at
        else None,
        "via": via,
    }
    if claimed.reclaimed_from is not None:
        payload["reclaimed_from"] = claimed.reclaimed_from
    uow.record(
        "review.claimed",
        tenant=ticket.tenant,
        subject_type="review_ticket",
        subject_id=ticket.id,
        payload=payload,
    )
    return claimed


async def decide(
    uow: UnitOfWork,
    *,
    reviewer: Client,
    ticket_id: str,
    outcome: Outcome,
    note: str,
    via: Via,
) -> TicketDecided:
    """Decide a ticket the reviewer holds and record it (the note stays out of the audit log)."""
    decided = await decide_ticket(
        uow.conn,
        ticket_id=ticket_id,
        reviewer=reviewer.client_id,
        scope=review_scope(reviewer.tenant),
        outcome=outcome,
        note=note,
    )
    ticket = decided.ticket
    payload: dict[str, Any] = {
        "decision_id": ticket.decision_id,
        "kind": ticket.kind,
        "outcome": outcome,
        "from_status": decided.change.from_status,
        "via": via,
    }
    if ticket.appeal_id is not None:
        payload["appeal_id"] = ticket.appeal_id
        payload["appeal_status"] = decided.appeal_status
    uow.record(
        f"{ticket.kind}.decided",
        tenant=ticket.tenant,
        subject_type="review_ticket",
        subject_id=ticket.id,
        payload=payload,
    )
    return decided
