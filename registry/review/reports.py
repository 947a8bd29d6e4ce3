"""Reports: a publisher tells the registry that an output the gate allowed should not have been.

Its users flag a published image (a person recognises themselves, a moderator of theirs
disagrees); the publisher files a report with a category from a fixed list, and a ticket of
kind ``report`` puts the decision before a reviewer. A reviewer who blocks it confirms the
report: the decision's ``current_status`` becomes ``blocked`` (the publisher takes the image
down) and, when it was the gate that allowed it (not a reviewer), counts as a miss of the
policy version that made it: the false-negative KPI. One report is open per decision at a
time; filing again while it is open answers with that report, so a publisher can forward
every user flag without counting them.

Only the category is kept: what a user wrote to the publisher stays with the publisher.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from registry.core import db
from registry.gate import repository as gate_repository
from registry.review import repository
from registry.review.errors import DecisionNotReportable
from registry.review.history import decision_row, record_change
from registry.review.repository import Report, ReportCategory, ReportStatus

if TYPE_CHECKING:
    from moderation import Policy
    from moderation.policy import ReviewTier
    from registry.core.uow import UnitOfWork

__all__ = ["Report", "ReportCategory", "ReportFiled", "ReportStatus", "file_report"]

# A report that a real person or a child is harmed waits in the policy's most urgent tier;
# any other in its default tier.
_URGENT: frozenset[ReportCategory] = frozenset({"nonconsensual", "minor"})


class ReportFiled(msgspec.Struct, kw_only=True, frozen=True):
    report: Report
    created: bool
    """False when a report of this decision was open already: that one is returned."""
    tier: str
    deadline: datetime


async def file_report(
    uow: UnitOfWork,
    *,
    client_id: str,
    tenant: str,
    decision_id: str,
    category: ReportCategory,
    policy: Policy,
) -> ReportFiled:
    """File the report and open its ticket (or return the open one); record it.

    Other tenants' decisions are not found; a prompt check, a decision in review or one that
    blocks already has nothing to report.
    """
    conn = uow.conn
    decision = await decision_row(conn, decision_id, tenant=tenant, lock=True)
    if decision.stage != "publish" or decision.current_status != "allowed":
        raise DecisionNotReportable(
            f"the decision is a {decision.stage} decision, {decision.current_status}; only an "
            "allowed publish decision can be reported"
        )
    now = await db.now(conn)
    rank, tier, deadline = _route(policy, category, now=now)
    existing = await repository.open_report_of(conn, decision_id)
    if existing is not None:
        return ReportFiled(report=existing, created=False, tier=tier.name, deadline=deadline)
    ticket_id = await gate_repository.open_review_ticket(
        conn, decision_id=decision_id, kind="report", tier=tier.name, rank=rank, deadline=deadline
    )
    report = Report(
        id="rpt_" + secrets.token_urlsafe(16),
        decision_id=decision_id,
        ticket_id=ticket_id,
        client_id=client_id,
        category=category,
        status="open",
        created_at=now,
    )
    await repository.insert_report(
        conn,
        report,
        tenant=decision.tenant,
        policy_version=decision.policy_version,
        gate_allowed=decision.status == "allowed",
    )
    await record_change(
        conn,
        decision_id=decision_id,
        event="reported",
        from_status=decision.current_status,
        to_status=decision.current_status,
        actor=client_id,
        note=None,
        ticket_id=ticket_id,
        appeal_id=None,
    )
    uow.record(
        "report.filed",
        subject_type="report",
        subject_id=report.id,
        payload={
            "decision_id": decision_id,
            "ticket_id": ticket_id,
            "category": category,
            "tier": tier.name,
        },
    )
    return ReportFiled(report=report, created=True, tier=tier.name, deadline=deadline)


def _route(
    policy: Policy, category: ReportCategory, *, now: datetime
) -> tuple[int, ReviewTier, datetime]:
    review = policy.review
    if category in _URGENT:
        rank = 0
    else:
        rank = next(i for i, t in enumerate(review.tiers) if t.name == review.default_tier)
    tier = review.tiers[rank]
    return rank, tier, now + timedelta(minutes=tier.deadline_minutes)
