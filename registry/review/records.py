"""Read views: a decision's record (for its publisher) and a review case (for reviewers).

A decision record is what a publisher may see of its own decision: the outcome now, the
reasons in plain language, the history and the appeal. A review case is everything the gate
saw, for the reviewer deciding it: the request as sent (prompt, source assets, metadata,
supplied scores; never tokens or image bytes), the evidence (consent answers, provenance
report, classifier results, hash-list matches, timings), the policy version, and the
consents' status now (a consent may have been withdrawn since).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Any

import msgspec

from registry.consent import repository as consent_repository
from registry.gate import repository as gate_repository
from registry.review.appeals import Appeal, appeal_of
from registry.review.history import (
    DecisionRow,
    DecisionStatus,
    Explained,
    HistoryEntry,
    decision_row,
    explained,
    history_of,
    statement,
)
from registry.review.queue import Ticket, get_ticket

if TYPE_CHECKING:
    import asyncpg

    from registry.gate.vault import DecisionVault

__all__ = ["ConsentNow", "DecisionRecord", "ReviewCase", "decision_record", "review_case"]

_TOKEN_STATUS = {0: "valid", 1: "revoked", 2: "suspended"}


class DecisionRecord(msgspec.Struct, kw_only=True, frozen=True):
    decision_id: str
    generation_id: str
    stage: str
    status: DecisionStatus
    """The gate's outcome."""
    current_status: DecisionStatus
    """The outcome now, after reviews and appeals."""
    reasons: list[Explained]
    notes: list[Explained]
    """What the gate recorded without holding it against the request: a score under a
    category the policy does not name (``score_unknown_category``), a face-similarity score
    it may not use, an absent manifest on a consented output."""
    scores: dict[str, float]
    policy_version: str
    policy_label: str
    decided_at: datetime
    updated_at: datetime
    statement: str
    history: list[HistoryEntry]
    appeal: Appeal | None


class ConsentNow(msgspec.Struct, kw_only=True, frozen=True):
    """A consent token the decision relied on, and its consent's status at this moment."""

    asset_id: str
    consent_id: str
    jti: str
    consent_status: str
    """active, withdrawn, erased, or unknown (no such record)."""
    token_status: str
    """valid, revoked, suspended, or unknown."""


class ReviewCase(msgspec.Struct, kw_only=True, frozen=True):
    ticket: Ticket
    decision: DecisionRecord
    client_id: str
    tenant: str
    image_sha256: str | None
    request: dict[str, Any]
    """The gate request as the publisher sent it, without image bytes or tokens."""
    evidence: dict[str, Any]
    """Everything the gate collected (moderation.Evidence)."""
    consents: list[ConsentNow]
    erased_at: datetime | None = None
    """When a consent the decision relied on was erased: the request, the evidence, the image
    and its hashes are gone."""


async def _record(conn: asyncpg.Connection, decision: DecisionRow) -> DecisionRecord:
    history = await history_of(conn, decision)
    return DecisionRecord(
        decision_id=decision.decision_id,
        generation_id=decision.generation_id,
        stage=decision.stage,
        status=decision.status,
        current_status=decision.current_status,
        reasons=explained(decision.reasons),
        notes=explained(decision.notes),
        scores=decision.scores,
        policy_version=decision.policy_version,
        policy_label=decision.policy_label,
        decided_at=decision.created_at,
        updated_at=decision.updated_at,
        statement=statement(decision, history),
        history=history,
        appeal=await appeal_of(conn, decision.decision_id, tenant=None),
    )


async def decision_record(
    conn: asyncpg.Connection, decision_id: str, *, tenant: str | None
) -> DecisionRecord:
    """The decision with its statement, history and appeal; other tenants' are not found."""
    return await _record(conn, await decision_row(conn, decision_id, tenant=tenant))


async def review_case(
    conn: asyncpg.Connection, vault: DecisionVault, ticket_id: str, *, scope: str | None
) -> ReviewCase:
    ticket = await get_ticket(conn, ticket_id, scope=scope)
    decision = await decision_row(conn, ticket.decision_id, tenant=None)
    files = await vault.case(conn, ticket.decision_id)
    consents = await gate_repository.decision_consents(conn, ticket.decision_id)
    # Their status now, from the consent domain's rows (a consent may be withdrawn since).
    records = await consent_repository.consent_statuses(conn, [c.consent_id for c in consents])
    tokens = await consent_repository.token_statuses(conn, [c.jti for c in consents])
    return ReviewCase(
        ticket=ticket,
        decision=await _record(conn, decision),
        client_id=decision.client_id,
        tenant=decision.tenant,
        image_sha256=files.image_sha256,
        request=files.request,
        evidence=files.evidence,
        erased_at=files.erased_at,
        consents=[
            ConsentNow(
                asset_id=c.asset_id,
                consent_id=c.consent_id,
                jti=c.jti,
                consent_status=records.get(c.consent_id) or "unknown",
                token_status=_TOKEN_STATUS.get(tokens.get(c.jti, -1), "unknown"),
            )
            for c in consents
        ],
    )
