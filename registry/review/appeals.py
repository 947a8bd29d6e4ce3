"""Appeals: a publisher asks, on behalf of its user, for a blocked decision to be looked at again.

A decision's image is not kept once it blocks (a review ticket's image goes when the ticket
is decided), so the publisher attaches it to the appeal (``attach_image``): the same bytes
the gate decided on (their SHA-256 is the decision's), kept sealed, like a review image,
until the appeal's ticket is decided. Never for a decision blocked for a likely minor or a
match within block distance of a listed image (``NO_IMAGE_REASONS``).

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
from typing import TYPE_CHECKING, Literal

import msgspec

from registry.consent.crypto import text_sha256
from registry.core import db
from registry.gate import repository as gate_repository
from registry.review import repository
from registry.review.errors import (
    AppealExists,
    AppealImageMismatch,
    AppealImageNotKept,
    AppealNotFound,
    AppealNotOpen,
    DecisionNotAppealable,
)
from registry.review.history import DecisionStatus, HistoryEntry, decision_row, record_change
from registry.review.repository import Appeal, AppealStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import asyncpg

    from moderation import Policy
    from moderation.policy import ReviewTier
    from registry.core.uow import UnitOfWork

__all__ = [
    "NO_IMAGE_REASONS",
    "Appeal",
    "AppealFiled",
    "AppealImage",
    "AppealStatus",
    "appeal_of",
    "appeal_route",
    "attach_image",
    "file_appeal",
    "settle_appeal",
]


# Reasons whose image an appeal never keeps: a likely minor (an image the operator may not
# hold, whose legal reporting has what it needs without it) and a match within block
# distance of a listed image (it is that image: a known abusive one, or a protected person's
# photo, of which the service keeps hashes, never a copy). The appeal's reviewer decides
# those from the evidence: the scores, the list entry's label and the distance.
NO_IMAGE_REASONS = frozenset({"minor_real_person", "minor_sexual", "hash_match_block"})


class AppealImage(msgspec.Struct, kw_only=True, frozen=True):
    appeal_id: str
    decision_id: str
    media_type: str
    bytes: int
    created: bool
    """False when the appeal's image was kept already (the same bytes: nothing changed)."""


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
    uow: UnitOfWork,
    *,
    client_id: str,
    tenant: str,
    decision_id: str,
    statement: str,
    policy: Policy,
) -> AppealFiled:
    """File the appeal, open its ticket and record it. Other tenants' decisions are not found."""
    conn = uow.conn
    decision = await decision_row(conn, decision_id, tenant=tenant, lock=True)
    if await repository.appeal_exists(conn, decision_id):
        raise AppealExists("this decision has been appealed already")
    if decision.current_status != "blocked":
        raise DecisionNotAppealable(
            f"the decision is {decision.current_status}; only a blocked decision can be appealed"
        )
    now = await db.now(conn)
    rank, tier, deadline = appeal_route(policy, decision.reasons, now=now)
    excluded = await gate_repository.reviewers_of(conn, decision_id)
    ticket_id = await gate_repository.open_review_ticket(
        conn,
        decision_id=decision_id,
        kind="appeal",
        tier=tier.name,
        rank=rank,
        deadline=deadline,
        excluded_reviewers=excluded,
    )
    appeal = Appeal(
        id="apl_" + secrets.token_urlsafe(16),
        decision_id=decision_id,
        ticket_id=ticket_id,
        client_id=client_id,
        statement=statement,
        statement_sha256=text_sha256(statement),
        appealed_status=decision.current_status,
        status="open",
        created_at=now,
    )
    appeal_id = appeal.id
    await repository.insert_appeal(
        conn, appeal, tenant=decision.tenant, policy_version=decision.policy_version
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
    uow.record(
        "appeal.filed",
        subject_type="appeal",
        subject_id=appeal_id,
        payload={
            "decision_id": decision_id,
            "ticket_id": ticket_id,
            "appealed_status": appeal.appealed_status,
            "tier": tier.name,
        },
    )
    return AppealFiled(
        appeal=appeal,
        change=change,
        tier=tier.name,
        deadline=deadline,
        excluded_reviewers=excluded,
    )


async def attach_image(
    uow: UnitOfWork,
    *,
    appeal_id: str,
    tenant: str,
    data: bytes,
    sha256: str,
    media_type: str,
    keep: Callable[[asyncpg.Connection, str, str, bytes], Awaitable[bool]],
) -> AppealImage:
    """Keep the decision's image for its open appeal, checked to be the gate's own bytes
    (``sha256``, of ``data``, is computed by the caller off the event loop).

    Other tenants' appeals are not found. Refused, with nothing kept: a decided appeal
    (``AppealNotOpen``), a decision blocked for one of ``NO_IMAGE_REASONS`` or without an
    image (``AppealImageNotKept``), other bytes (``AppealImageMismatch``).
    """
    conn = uow.conn
    found = await repository.appeal_by_id(conn, appeal_id, tenant=tenant)
    if found is None:
        raise AppealNotFound("no appeal with this id for this tenant")
    # The decision's row lock orders this after the appeal's own decision (which takes it)
    # and an erasure: the appeal's status is read again under it, so no image is kept for
    # a ticket that closed in between (its close deletes the decision's image).
    decision = await decision_row(conn, found[0], tenant=tenant, lock=True)
    found = await repository.appeal_by_id(conn, appeal_id, tenant=tenant)
    if found is None or found[1] != "open":
        raise AppealNotOpen("the appeal was decided; its image is no longer needed")
    decision_id = decision.decision_id
    never = sorted(NO_IMAGE_REASONS.intersection(decision.reasons))
    if never:
        raise AppealImageNotKept(
            "an image blocked for " + ", ".join(never) + " is never kept; the appeal is "
            "decided from its evidence"
        )
    if decision.image_sha256 is None:
        raise AppealImageNotKept("the decision has no image (a prompt check, or erased)")
    if sha256 != decision.image_sha256:
        raise AppealImageMismatch(
            "the image's SHA-256 is not the decided image's; send the exact bytes the gate was sent"
        )
    created = await keep(conn, decision_id, media_type, data)
    if created:
        uow.record(
            "appeal.image_attached",
            subject_type="appeal",
            subject_id=appeal_id,
            payload={"decision_id": decision_id, "media_type": media_type},
        )
    return AppealImage(
        appeal_id=appeal_id,
        decision_id=decision_id,
        media_type=media_type,
        bytes=len(data),
        created=created,
    )


async def settle_appeal(
    conn: asyncpg.Connection, appeal_id: str, *, outcome: DecisionStatus
) -> Literal["upheld", "overturned"]:
    """Record what the appeal came to: ``overturned`` when the outcome differs."""
    return await repository.settle_appeal(conn, appeal_id, outcome=outcome)


async def appeal_of(
    conn: asyncpg.Connection, decision_id: str, *, tenant: str | None
) -> Appeal | None:
    """The decision's appeal, if it has one and it belongs to ``tenant`` (any when None)."""
    return await repository.appeal_of(conn, decision_id, tenant=tenant)
