"""Gate decisions and the consent tokens each relied on (``moderation_decisions``,
``moderation_decision_consents``): written once by the gate; afterwards only the current
status moves (reviews and appeals, through ``set_current_status``)."""

from __future__ import annotations

from datetime import date, datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from moderation import Evidence, Status, decode_evidence

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg

__all__ = [
    "AffectedDecision",
    "CaseFiles",
    "DecisionConsent",
    "DecisionRow",
    "NewDecision",
    "StoredEvidence",
    "clients_using_consent",
    "decision_case",
    "decision_consents",
    "decisions_using_consent",
    "find_decision",
    "get_decision",
    "hash_from_db",
    "hash_to_db",
    "insert_decision",
    "iter_evidence",
    "outcomes_since",
    "set_current_status",
]

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
    legal_report: bool = False


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


class CaseFiles(msgspec.Struct, kw_only=True, frozen=True):
    """What the gate saw, as stored: the image's hash, the request and the evidence (JSON)."""

    image_sha256: str | None
    request: dict[str, Any]
    evidence: dict[str, Any]


class AffectedDecision(msgspec.Struct, kw_only=True, frozen=True):
    """A decision that relied on a consent's tokens."""

    decision_id: str
    generation_id: str
    client_id: str
    """The publisher client that asked the gate."""
    stage: str
    status: str
    current_status: str
    decided_at: datetime


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
        " policy_version, policy_label, current_status, legal_report)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $9, $16)"
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
        new.legal_report,
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


class DecisionSummary(msgspec.Struct, kw_only=True, frozen=True):
    """A decision as a listing shows it (``seq`` orders it and pages the listing)."""

    seq: int
    decision_id: str
    generation_id: str
    stage: str
    client_id: str
    tenant: str
    status: Status
    current_status: Status
    reasons: tuple[str, ...]
    legal_report: bool
    policy_label: str
    created_at: datetime


async def list_decisions(
    conn: asyncpg.Connection,
    *,
    legal_report: bool | None,
    tenant: str | None,
    before: int | None,
    limit: int,
) -> list[DecisionSummary]:
    """Decisions newest first: those flagged (or not) for legal reporting when asked, of
    ``tenant`` (None: every tenant's), below ``seq`` ``before``."""
    rows = await conn.fetch(
        "SELECT seq, decision_id, generation_id, stage, client_id, tenant, status,"
        " current_status, reasons, legal_report, policy_label, created_at"
        " FROM moderation_decisions"
        " WHERE ($1::boolean IS NULL OR legal_report = $1)"
        " AND ($2::text IS NULL OR tenant = $2) AND ($3::bigint IS NULL OR seq < $3)"
        " ORDER BY seq DESC LIMIT $4",
        legal_report,
        tenant,
        before,
        limit,
    )
    return [DecisionSummary(**dict(row)) for row in rows]


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


async def get_decision(
    conn: asyncpg.Connection, decision_id: str, *, tenant: str | None = None, lock: bool = False
) -> DecisionRow | None:
    """The decision, if it belongs to ``tenant`` (any tenant when None).

    ``lock`` takes the row lock that serialises changes of one decision's current status.
    """
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM moderation_decisions d"  # noqa: S608 - constant columns
        " WHERE d.decision_id = $1 AND ($2::text IS NULL OR d.tenant = $2)"
        + (" FOR UPDATE OF d" if lock else ""),
        decision_id,
        tenant,
    )
    return _row(record) if record is not None else None


async def set_current_status(
    conn: asyncpg.Connection, decision_id: str, status: Status, *, at: datetime
) -> None:
    """Move the decision's outcome now (a review or an appeal decided it); ``status`` stays."""
    await conn.execute(
        "UPDATE moderation_decisions SET current_status = $2, updated_at = $3"
        " WHERE decision_id = $1",
        decision_id,
        status,
        at,
    )


async def decision_case(conn: asyncpg.Connection, decision_id: str) -> CaseFiles:
    """The stored request and evidence of an existing decision (for its reviewer)."""
    [row] = await conn.fetch(
        "SELECT image_sha256, request, evidence FROM moderation_decisions WHERE decision_id = $1",
        decision_id,
    )
    return CaseFiles(
        image_sha256=row["image_sha256"], request=row["request"], evidence=row["evidence"]
    )


async def decision_consents(conn: asyncpg.Connection, decision_id: str) -> list[DecisionConsent]:
    rows = await conn.fetch(
        "SELECT position, asset_id, consent_id, jti FROM moderation_decision_consents"
        " WHERE decision_id = $1 ORDER BY position",
        decision_id,
    )
    return [DecisionConsent(**dict(row)) for row in rows]


async def decisions_using_consent(
    conn: asyncpg.Connection,
    consent_id: str,
    *,
    tenant: str | None = None,
    client_id: str | None = None,
) -> list[AffectedDecision]:
    """The decisions that relied on ``consent_id``'s tokens, of ``tenant`` and ``client_id``
    when given, oldest first."""
    rows = await conn.fetch(
        "SELECT d.decision_id, d.generation_id, d.client_id, d.stage, d.status,"
        " d.current_status, d.created_at AS decided_at FROM moderation_decisions d"
        " WHERE d.decision_id IN (SELECT decision_id FROM moderation_decision_consents"
        "  WHERE consent_id = $1)"
        " AND ($2::text IS NULL OR d.tenant = $2) AND ($3::text IS NULL OR d.client_id = $3)"
        " ORDER BY d.seq",
        consent_id,
        tenant,
        client_id,
    )
    return [AffectedDecision(**dict(r)) for r in rows]


async def clients_using_consent(conn: asyncpg.Connection, consent_id: str) -> list[str]:
    """The clients that asked the gate about an image made with ``consent_id``'s tokens."""
    rows = await conn.fetch(
        "SELECT DISTINCT d.client_id FROM moderation_decisions d"
        " JOIN moderation_decision_consents m USING (decision_id) WHERE m.consent_id = $1"
        " ORDER BY d.client_id",
        consent_id,
    )
    return [r["client_id"] for r in rows]


async def outcomes_since(conn: asyncpg.Connection, first: date) -> list[tuple[date, str, int]]:
    """(UTC day, gate outcome, decisions) for every day from ``first`` that had decisions."""
    rows = await conn.fetch(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS n"
        " FROM moderation_decisions WHERE created_at >= $1::date AT TIME ZONE 'UTC'"
        " GROUP BY 1, 2",
        first,
    )
    return [(row["day"], row["status"], row["n"]) for row in rows]


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
