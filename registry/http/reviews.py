"""The human review queue over HTTP: list, claim, see the case, decide.

Reviewers of the operator's tenant (``system``) work every tenant's tickets; a reviewer
client created inside another tenant works only that tenant's (``registry.review.queue``).
A claim with nothing to claim answers 204 No Content: an empty queue is not an error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter

from registry import review
from registry.core.auth import Client, Role
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow

MAX_NOTE = 2000
TicketId = FromPath[str]


class DecideTicket(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    outcome: review.Outcome
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NOTE, pattern=r"\S")]
    """Why, in the reviewer's words (1-2000 characters); kept with the decision's history."""


class TicketList(msgspec.Struct, kw_only=True, frozen=True):
    tickets: list[review.Ticket]


class TicketDecidedView(msgspec.Struct, kw_only=True, frozen=True):
    ticket: review.Ticket
    decision_id: str
    from_status: str
    current_status: str
    appeal_status: str | None


class ReviewsController(Controller):
    path = "/v1/reviews"
    tags = ["review"]  # noqa: RUF012 - Litestar reads class attributes
    guards = [allow(Role.REVIEWER)]  # noqa: RUF012
    security = BEARER

    @get("/", summary="Review and appeal tickets in queue order (reviewer)")
    async def list_tickets(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        status: Annotated[
            review.TicketStatus | None,
            QueryParameter(description="open (including expired claims), claimed or closed"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> TicketList:
        scope = review.review_scope(caller.tenant)
        async with services.connection() as conn:
            tickets = await review.list_tickets(conn, scope=scope, status=status, limit=limit)
        return TicketList(tickets=tickets)

    @post(
        "/claim",
        summary="Lease the next ticket by priority to the caller (204 when there is none)",
        description=(
            "Priority: tier rank, then deadline, then age. The lease lasts "
            "REGISTRY_REVIEW_LEASE_SECONDS; when it runs out the ticket is back in the queue. "
            "Two reviewers never get the same ticket. Appeal tickets are never offered to a "
            "reviewer who decided the same decision before."
        ),
        status_code=200,
        responses={204: ResponseSpec(data_container=None, description="No ticket to claim")},
    )
    async def claim(self, services: AppServices, caller: NamedDependency[Client]) -> Response[Any]:
        lease = timedelta(seconds=services.settings.review_lease_seconds)
        async with services.unit_of_work(caller) as uow:
            claimed = await review.claim(uow, reviewer=caller, lease=lease, via="api")
        if claimed is None:
            return Response(content=None, status_code=204)
        ticket = claimed.ticket
        return Response(content=ticket, status_code=200)

    @get(
        "/{ticket_id:str}",
        summary="Everything the gate saw for a ticket's decision (reviewer)",
        description=(
            "The request as sent (prompt, source assets, metadata, supplied scores), the "
            "evidence (consent answers, provenance report, classifier results, hash-list "
            "matches), the policy version, the consents' status now, history and appeal."
        ),
    )
    async def case(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        ticket_id: TicketId,
    ) -> review.ReviewCase:
        scope = review.review_scope(caller.tenant)
        async with services.connection() as conn:
            return await review.review_case(conn, services.gate.vault, ticket_id, scope=scope)

    @post(
        "/{ticket_id:str}/decision",
        summary="Decide a ticket the caller holds: allowed or blocked, with a note",
        status_code=200,
        opt={"body": DecideTicket},
    )
    async def decide(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[DecideTicket],
        ticket_id: TicketId,
    ) -> TicketDecidedView:
        async with services.unit_of_work(caller) as uow:
            decided = await review.decide(
                uow,
                reviewer=caller,
                ticket_id=ticket_id,
                outcome=payload.outcome,
                note=payload.note,
                via="api",
            )
        ticket = decided.ticket
        return TicketDecidedView(
            ticket=ticket,
            decision_id=ticket.decision_id,
            from_status=decided.change.from_status or decided.change.to_status,
            current_status=decided.change.to_status,
            appeal_status=decided.appeal_status,
        )


class StatsController(Controller):
    tags = ["moderation"]  # noqa: RUF012 - Litestar reads class attributes

    @get(
        "/v1/moderation/stats",
        summary="Moderation KPIs (admin)",
        description=(
            "Decisions by status and reason, blocked rate, review latency p50/p95, open "
            "tickets past deadline, appeal overturn rate, classifier errors and latency; over "
            "the last `window_days` (default 30): recidivism (repeat blocked decisions per end "
            "user and per client) and, per policy version, false positives (overturned "
            "appeals) and false negatives (allowed outputs a reviewer blocked after a report). "
            "The same figures are Prometheus gauges on /metrics (the window there is 30 days)."
        ),
        guards=[allow(Role.ADMIN)],
        security=BEARER,
    )
    async def stats(
        self,
        services: AppServices,
        window_days: Annotated[
            int,
            QueryParameter(
                ge=1,
                le=366,
                description="Days the recidivism and per-policy-version figures cover",
            ),
        ] = review.DEFAULT_WINDOW_DAYS,
    ) -> review.Stats:
        async with services.connection() as conn:
            stats = await review.compute_stats(conn, window_days=window_days)
        if window_days == review.DEFAULT_WINDOW_DAYS:
            # /metrics shows the default window only.
            review.publish_stats(stats)
        return stats
