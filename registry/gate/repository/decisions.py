"""Gate decisions and the consent tokens each relied on (``moderation_decisions``,
``moderation_decision_consents``): written once by the gate; afterwards only the current
status moves (reviews and appeals, through ``set_current_status``)."""

from __future__ import annotations

from datetime import date, datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from moderation import Evidence, Status  # noqa: TC001 - msgspec reads annotations at runtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg

__all__ = [
    "AffectedDecision",
    "DecisionConsent",
    "DecisionRow",
    "NewDecision",
    "StoredCase",
    "clients_using_consent",
    "decision_case",
    "decision_consents",
    "decision_erased",
    "decisions_using_consent",
    "erase_decisions_of",
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
    " d.request_sha256, d.status, d.current_status, d.reasons, d.notes, d.scores,"
    " d.policy_version,"
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
    notes: tuple[str, ...] = ()
    """Codes recorded but not held against the request (``Decision.notes``)."""
    user_ref: str | None = None
    """The end user's blind index (``SubjectIndex.end_user``), for the recidivism KPIs."""
    model: str | None = None
    """The model the request named, in clear for the stop conditions (a product name)."""


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
    notes: tuple[str, ...]
    scores: dict[str, float]
    policy_version: str
    policy_label: str
    created_at: datetime
    updated_at: datetime
    review_ticket: str | None


class StoredCase(msgspec.Struct, kw_only=True, frozen=True):
    """What a decision holds about its request, as stored: sealed (``sealed`` under
    ``data_key_id``), in clear (rows from before migration 0016), or erased (neither)."""

    decision_id: str
    stage: str
    created_at: datetime
    image_sha256: str | None
    request: dict[str, Any] | None
    evidence: dict[str, Any] | None
    sealed: bytes | None
    data_key_id: str | None
    erased_at: datetime | None


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
    values["notes"] = tuple(values["notes"])
    return DecisionRow(**values)


async def insert_decision(
    conn: asyncpg.Connection, new: NewDecision, *, sealed: bytes, data_key_id: str
) -> bool:
    """Store ``new`` and its consents; False when the generation already has a decision.

    ``sealed`` is ``new.request`` and ``new.evidence`` sealed under the data key
    ``data_key_id`` (``registry.gate.vault``): neither is stored in clear.
    """
    phash = hash_to_db(int(new.image_phash, 16)) if new.image_phash is not None else None
    inserted = await conn.fetchval(
        "INSERT INTO moderation_decisions (decision_id, generation_id, stage, client_id, tenant,"
        " image_sha256, image_phash, request_sha256, status, reasons, scores, sealed,"
        " data_key_id, policy_version, policy_label, current_status, legal_report, evidence,"
        " user_ref, model, notes)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $9, $16,"
        " $17, $18, $19, $20)"
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
        sealed,
        data_key_id,
        new.policy_version,
        new.policy_label,
        new.legal_report,
        # The KPIs' part of the evidence, in clear: classifier results say nothing of people.
        {"classifiers": msgspec.to_builtins(new.evidence.classifiers)},
        new.user_ref,
        new.model,
        list(new.notes),
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


async def decision_case(conn: asyncpg.Connection, decision_id: str) -> StoredCase:
    """What an existing decision holds about its request, as stored (for its reviewer)."""
    [row] = await conn.fetch(
        "SELECT decision_id, stage, created_at, image_sha256, request, evidence, sealed,"
        " data_key_id, erased_at FROM moderation_decisions WHERE decision_id = $1",
        decision_id,
    )
    return StoredCase(**dict(row))


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
) -> AsyncIterator[tuple[Status, StoredCase]]:
    """Every stored decision that still has its evidence, oldest first, read in batches by
    ``seq``: with its status and its case as stored (``registry.gate.vault`` opens it)."""
    after = 0
    while True:
        rows = await conn.fetch(
            "SELECT seq, status, decision_id, stage, created_at, image_sha256, request,"
            " evidence, sealed, data_key_id, erased_at"
            " FROM moderation_decisions WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            batch,
        )
        for row in rows:
            values = dict(row)
            del values["seq"]
            status = values.pop("status")
            yield status, StoredCase(**values)
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


async def decision_erased(conn: asyncpg.Connection, decision_id: str) -> bool:
    """Whether a consent the decision relied on was erased (so its image went with it)."""
    erased = await conn.fetchval(
        "SELECT erased_at IS NOT NULL FROM moderation_decisions WHERE decision_id = $1",
        decision_id,
    )
    return bool(erased)


async def erase_decisions_of(
    conn: asyncpg.Connection, consent_id: str, at: datetime
) -> list[tuple[str, str | None]]:
    """Tombstone the decisions that relied on ``consent_id``'s tokens: (decision id, data key
    id) of each.

    The image's hashes and any clear copy of the request and evidence go, all but the
    classifier results the KPIs count (the sealed copy is
    left for the caller to shred by deleting the returned keys). Outcome, reasons, scores and
    policy stay, and so does the link to the consent (pseudonymous ids: the takedown worker
    reads it to notify the publishers). Decisions already erased are skipped.
    """
    rows = await conn.fetch(
        "UPDATE moderation_decisions SET request = NULL, image_sha256 = NULL, image_phash = NULL,"
        " evidence = jsonb_build_object('classifiers', coalesce(evidence->'classifiers', '[]')),"
        " erased_at = $2, updated_at = $2"
        " WHERE decision_id IN (SELECT decision_id FROM moderation_decision_consents"
        "  WHERE consent_id = $1) AND erased_at IS NULL"
        " RETURNING decision_id, data_key_id",
        consent_id,
        at,
    )
    return [(row["decision_id"], row["data_key_id"]) for row in rows]
