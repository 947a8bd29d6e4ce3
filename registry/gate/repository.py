"""Gate decisions, their consent tokens and review tickets in PostgreSQL.

Functions take a connection: the gate's service opens the transaction in which a decision,
its ticket and its audit event are written together. ``open_review_ticket`` is shared with
the review queue, which also opens tickets (appeals) on these tables.
"""

from __future__ import annotations

import secrets
from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

from moderation import Evidence, Status, decode_evidence

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg

__all__ = [
    "DecisionConsent",
    "DecisionRow",
    "NewDecision",
    "StoredEvidence",
    "TicketKind",
    "decision_consents",
    "find_decision",
    "get_decision",
    "hash_from_db",
    "hash_to_db",
    "insert_decision",
    "iter_evidence",
    "open_review_ticket",
    "review_ticket_of",
]

TicketKind: TypeAlias = Literal["review", "appeal"]
_MASK64 = (1 << 64) - 1
_SIGN_BIT = 1 << 63
_COLUMNS = (
    "d.decision_id, d.generation_id, d.stage, d.client_id, d.tenant, d.image_sha256,"
    " d.request_sha256, d.status, d.current_status, d.reasons, d.scores, d.policy_version,"
    " d.policy_label, d.created_at, d.updated_at,"
    " (SELECT t.ticket_id FROM review_tickets t WHERE t.decision_id = d.decision_id"
    "  AND t.kind = 'review' ORDER BY t.created_at LIMIT 1) AS review_ticket"
)


def hash_to_db(value: int) -> int:
    """A 64-bit hash as the signed bigint with the same bits."""
    return value - (1 << 64) if value & _SIGN_BIT else value


def hash_from_db(value: int) -> int:
    return value & _MASK64


class DecisionConsent(msgspec.Struct, kw_only=True, frozen=True):
    """A consent token a decision relied on (only tokens whose claims could be read)."""

    position: int
    asset_id: str
    consent_id: str
    jti: str


class NewDecision(msgspec.Struct, kw_only=True, frozen=True):
    decision_id: str
    generation_id: str
    stage: Literal["publish", "prompt"]
    client_id: str
    tenant: str
    image_sha256: str | None
    image_phash: str | None
    request_sha256: str
    status: Status
    reasons: tuple[str, ...]
    scores: dict[str, float]
    evidence: Evidence
    request: dict[str, Any]
    policy_version: str
    policy_label: str
    consents: tuple[DecisionConsent, ...] = ()


class DecisionRow(msgspec.Struct, kw_only=True, frozen=True):
    decision_id: str
    generation_id: str
    stage: str
    client_id: str
    tenant: str
    image_sha256: str | None
    request_sha256: str
    status: Status
    current_status: Status
    reasons: tuple[str, ...]
    scores: dict[str, float]
    policy_version: str
    policy_label: str
    created_at: datetime
    updated_at: datetime
    review_ticket: str | None


class StoredEvidence(msgspec.Struct, kw_only=True, frozen=True):
    decision_id: str
    status: str
    evidence: Evidence


def _row(record: asyncpg.Record) -> DecisionRow:
    values = dict(record)
    values["reasons"] = tuple(values["reasons"])
    return DecisionRow(**values)


async def insert_decision(conn: asyncpg.Connection, new: NewDecision) -> bool:
    """Store ``new`` and its consents; False when the generation already has a decision."""
    phash = hash_to_db(int(new.image_phash, 16)) if new.image_phash is not None else None
    inserted = await conn.fetchval(
        "INSERT INTO moderation_decisions (decision_id, generation_id, stage, client_id, tenant,"
        " image_sha256, image_phash, request_sha256, status, reasons, scores, evidence, request,"
        " policy_version, policy_label, current_status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $9)"
        " ON CONFLICT (client_id, generation_id, stage) DO NOTHING RETURNING true",
        new.decision_id,
        new.generation_id,
        new.stage,
        new.client_id,
        new.tenant,
        new.image_sha256,
        phash,
        new.request_sha256,
        new.status,
        list(new.reasons),
        new.scores,
        new.evidence,
        new.request,
        new.policy_version,
        new.policy_label,
    )
    if not inserted:
        return False
    if new.consents:
        await conn.executemany(
            "INSERT INTO moderation_decision_consents (decision_id, position, asset_id,"
            " consent_id, jti) VALUES ($1, $2, $3, $4, $5)",
            [(new.decision_id, c.position, c.asset_id, c.consent_id, c.jti) for c in new.consents],
        )
    return True


async def find_decision(
    conn: asyncpg.Connection, client_id: str, generation_id: str, stage: str
) -> DecisionRow | None:
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM moderation_decisions d"  # noqa: S608 - constant columns
        " WHERE d.client_id = $1 AND d.generation_id = $2 AND d.stage = $3",
        client_id,
        generation_id,
        stage,
    )
    return _row(record) if record is not None else None


async def get_decision(conn: asyncpg.Connection, decision_id: str) -> DecisionRow | None:
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM moderation_decisions d WHERE d.decision_id = $1",  # noqa: S608
        decision_id,
    )
    return _row(record) if record is not None else None


async def decision_consents(conn: asyncpg.Connection, decision_id: str) -> list[DecisionConsent]:
    rows = await conn.fetch(
        "SELECT position, asset_id, consent_id, jti FROM moderation_decision_consents"
        " WHERE decision_id = $1 ORDER BY position",
        decision_id,
    )
    return [DecisionConsent(**dict(row)) for row in rows]


async def open_review_ticket(
    conn: asyncpg.Connection,
    *,
    decision_id: str,
    kind: TicketKind,
    tier: str,
    rank: int,
    deadline: datetime,
) -> str:
    """Open a ticket for ``decision_id``; call in the transaction that records why."""
    ticket_id = "tkt_" + secrets.token_urlsafe(16)
    await conn.execute(
        "INSERT INTO review_tickets (ticket_id, decision_id, kind, tier, rank, deadline)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        ticket_id,
        decision_id,
        kind,
        tier,
        rank,
        deadline,
    )
    return ticket_id


async def review_ticket_of(conn: asyncpg.Connection, decision_id: str) -> str | None:
    ticket: str | None = await conn.fetchval(
        "SELECT ticket_id FROM review_tickets WHERE decision_id = $1 AND kind = 'review'"
        " ORDER BY created_at LIMIT 1",
        decision_id,
    )
    return ticket


async def iter_evidence(
    conn: asyncpg.Connection, *, batch: int = 1000
) -> AsyncIterator[StoredEvidence]:
    """Every stored decision's evidence, oldest first, read in batches by ``seq``."""
    after = 0
    while True:
        rows = await conn.fetch(
            "SELECT seq, decision_id, status, evidence::text AS evidence"
            " FROM moderation_decisions WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            batch,
        )
        for row in rows:
            yield StoredEvidence(
                decision_id=row["decision_id"],
                status=row["status"],
                evidence=decode_evidence(row["evidence"].encode("utf-8")),
            )
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]
