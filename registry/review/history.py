"""A gate decision's record after the gate: every change of its status, who made it, when, why.

The gate's own outcome stays in ``moderation_decisions.status``; ``current_status`` follows
the latest review or appeal. History rows are append-only (a trigger refuses updates), and
the gate's outcome is shown as the first entry so a reader sees one timeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from moderation import Decision, explain
from registry.gate import repository as gate_repository
from registry.gate.repository import DecisionRow
from registry.review import repository
from registry.review.errors import DecisionNotFound
from registry.review.repository import DecisionStatus, HistoryEntry, HistoryEvent

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

GATE_ACTOR = "gate"


async def decision_row(
    conn: asyncpg.Connection, decision_id: str, *, tenant: str | None, lock: bool = False
) -> DecisionRow:
    """The decision, if it belongs to ``tenant`` (any tenant when None); else DecisionNotFound.

    ``lock`` takes the row lock that serialises status changes of one decision.
    """
    row = await gate_repository.get_decision(conn, decision_id, tenant=tenant, lock=lock)
    if row is None:
        raise DecisionNotFound("no decision with this id for this tenant")
    return row


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
    at = await repository.append_history(
        conn,
        decision_id=decision_id,
        event=event,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        note=note,
        ticket_id=ticket_id,
        appeal_id=appeal_id,
    )
    if from_status != to_status:
        await gate_repository.set_current_status(conn, decision_id, to_status, at=at)
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
    entries = await repository.history_of(conn, decision.decision_id)
    gated = HistoryEntry(
        event="gated",
        from_status=None,
        to_status=decision.status,
        actor=GATE_ACTOR,
        at=decision.created_at,
    )
    return [gated, *entries]


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
    "reported": "Reported after publication on {at}.",
    "report_decided": "The report was decided on {at}: {to}.",
}


def statement(decision: DecisionRow, history: list[HistoryEntry]) -> str:
    """The gate's plain-language statement, then one line per later step and the outcome now."""
    gated = Decision(
        status=decision.status,
        stage="prompt" if decision.stage == "prompt" else "publish",
        reasons=decision.reasons,
        notes=decision.notes,
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
