"""A gate decision's record after the gate: every change of its status, who made it, when, why.

The gate's own outcome stays in ``moderation_decisions.status``; ``current_status`` follows
the latest review or appeal. History rows are append-only (a trigger refuses updates), and
the gate's outcome is shown as the first entry so a reader sees one timeline.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from moderation import Decision, explain
from registry.review.errors import DecisionNotFound

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "GATE_ACTOR",
    "DecisionRow",
    "DecisionStatus",
    "Explained",
    "HistoryEntry",
    "HistoryEvent",
    "decision_row",
    "explained",
    "history_of",
    "record_change",
    "statement",
]

DecisionStatus: TypeAlias = Literal["allowed", "review", "blocked"]
HistoryEvent: TypeAlias = Literal["gated", "reviewed", "appealed", "appeal_decided"]
GATE_ACTOR = "gate"


class HistoryEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One step: ``gated`` (the gate's outcome), ``reviewed``, ``appealed``, ``appeal_decided``.

    ``actor`` is ``gate`` or an API client id; ``note`` is the reviewer's note (none for the
    gate's own step or for filing an appeal, whose statement is on the appeal).
    """

    event: HistoryEvent
    from_status: DecisionStatus | None
    to_status: DecisionStatus
    actor: str
    at: datetime
    note: str | None = None
    ticket_id: str | None = None
    appeal_id: str | None = None


class DecisionRow(msgspec.Struct, kw_only=True, frozen=True):
    """The columns of a gate decision the review domain reads."""

    decision_id: str
    generation_id: str
    stage: str
    client_id: str
    tenant: str
    status: DecisionStatus
    current_status: DecisionStatus
    reasons: tuple[str, ...]
    scores: dict[str, float]
    policy_version: str
    policy_label: str
    created_at: datetime
    updated_at: datetime


_DECISION_COLUMNS = (
    "decision_id, generation_id, stage, client_id, tenant, status, current_status, reasons,"
    " scores, policy_version, policy_label, created_at, updated_at"
)


def _decision(row: asyncpg.Record) -> DecisionRow:
    return DecisionRow(
        decision_id=row["decision_id"],
        generation_id=row["generation_id"],
        stage=row["stage"],
        client_id=row["client_id"],
        tenant=row["tenant"],
        status=row["status"],
        current_status=row["current_status"],
        reasons=tuple(row["reasons"]),
        scores=row["scores"],
        policy_version=row["policy_version"],
        policy_label=row["policy_label"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def decision_row(
    conn: asyncpg.Connection, decision_id: str, *, tenant: str | None, lock: bool = False
) -> DecisionRow:
    """The decision, if it belongs to ``tenant`` (any tenant when None); else DecisionNotFound.

    ``lock`` takes the row lock that serialises status changes of one decision.
    """
    row = await conn.fetchrow(
        f"SELECT {_DECISION_COLUMNS} FROM moderation_decisions"  # noqa: S608 - constant columns
        " WHERE decision_id = $1 AND ($2::text IS NULL OR tenant = $2)"
        + (" FOR UPDATE" if lock else ""),
        decision_id,
        tenant,
    )
    if row is None:
        raise DecisionNotFound("no decision with this id for this tenant")
    return _decision(row)


async def record_change(
    conn: asyncpg.Connection,
    *,
    decision_id: str,
    event: HistoryEvent,
    from_status: DecisionStatus,
    to_status: DecisionStatus,
    actor: str,
    note: str | None,
    ticket_id: str | None = None,
    appeal_id: str | None = None,
) -> HistoryEntry:
    """Append a history entry and move the decision's ``current_status`` to ``to_status``."""
    at = await conn.fetchval(
        "INSERT INTO moderation_decision_history (decision_id, event, from_status, to_status,"
        " actor, ticket_id, appeal_id, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " RETURNING at",
        decision_id,
        event,
        from_status,
        to_status,
        actor,
        ticket_id,
        appeal_id,
        note,
    )
    if from_status != to_status:
        await conn.execute(
            "UPDATE moderation_decisions SET current_status = $2, updated_at = $3"
            " WHERE decision_id = $1",
            decision_id,
            to_status,
            at,
        )
    return HistoryEntry(
        event=event,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        at=at,
        note=note,
        ticket_id=ticket_id,
        appeal_id=appeal_id,
    )


async def history_of(conn: asyncpg.Connection, decision: DecisionRow) -> list[HistoryEntry]:
    """The decision's timeline, oldest first, starting with the gate's outcome."""
    rows = await conn.fetch(
        "SELECT event, from_status, to_status, actor, at, note, ticket_id, appeal_id"
        " FROM moderation_decision_history WHERE decision_id = $1 ORDER BY entry_id",
        decision.decision_id,
    )
    gated = HistoryEntry(
        event="gated",
        from_status=None,
        to_status=decision.status,
        actor=GATE_ACTOR,
        at=decision.created_at,
    )
    return [gated, *(HistoryEntry(**dict(row)) for row in rows)]


class Explained(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    text: str


def explained(reasons: tuple[str, ...]) -> list[Explained]:
    """Each reason code with its one-line plain-language explanation."""
    return [Explained(code=code, text=explain(code)) for code in reasons]


_CHANGE_LINES: dict[HistoryEvent, str] = {
    "gated": "",
    "reviewed": "A reviewer decided on {at}: {to}.",
    "appealed": "Appealed on {at}.",
    "appeal_decided": "The appeal was decided on {at}: {to}.",
}


def statement(decision: DecisionRow, history: list[HistoryEntry]) -> str:
    """The gate's plain-language statement, then one line per later step and the outcome now."""
    gated = Decision(
        status=decision.status,
        stage="prompt" if decision.stage == "prompt" else "publish",
        reasons=decision.reasons,
        notes=(),
        findings=(),
        scores=decision.scores,
        policy_version=decision.policy_version,
        policy_label=decision.policy_label,
    )
    lines = [gated.statement()]
    lines.extend(
        _CHANGE_LINES[entry.event].format(at=entry.at.isoformat(), to=entry.to_status)
        for entry in history
        if entry.event != "gated"
    )
    if decision.current_status != decision.status:
        lines.append(f"Current status: {decision.current_status}.")
    return "\n".join(lines)
