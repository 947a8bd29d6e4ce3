"""The review domain's tables in PostgreSQL: appeals, decision history, takedown notices.

owns: review_appeals, review_reports, moderation_decision_history, review_texts,
takedown_webhooks, takedown_events, takedown_deliveries, takedown_attempts.

What review reads or changes of other domains goes through their repositories: decisions and
review tickets are the gate's (``registry.gate.repository``, which says why the tickets are
too), consent and token statuses the consent domain's, signed outputs provenance's, API
clients core's. ``takedown_events`` is filled by a trigger on ``consent_records``
(migration 0007) in the withdrawing transaction: the consent domain never writes it itself.

Functions take a connection: callers own the transaction (and its unit of work).
"""

from __future__ import annotations

from datetime import datetime, timedelta  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from registry.consent.crypto import text_sha256

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "Appeal",
    "AppealStatus",
    "DecisionStatus",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "DueDelivery",
    "HistoryEntry",
    "HistoryEvent",
    "PendingWithdrawal",
    "Report",
    "ReportCategory",
    "ReportStatus",
    "VersionOutcomes",
    "Webhook",
    "all_webhooks",
    "appeal_counts",
    "appeal_exists",
    "appeal_ids_of_tickets",
    "appeal_of",
    "append_history",
    "delete_texts_of",
    "deliveries",
    "history_of",
    "insert_appeal",
    "insert_attempt",
    "insert_delivery",
    "insert_misuse_delivery",
    "insert_report",
    "mark_processed",
    "open_report_of",
    "outcomes_by_policy_version",
    "pending_withdrawals",
    "settle_appeal",
    "settle_report",
    "take_due",
    "update_delivery",
    "upsert_webhook",
    "webhooks_of",
]

DecisionStatus: TypeAlias = Literal["allowed", "review", "blocked"]
HistoryEvent: TypeAlias = Literal[
    "gated", "reviewed", "appealed", "appeal_decided", "reported", "report_decided"
]
AppealStatus: TypeAlias = Literal["open", "upheld", "overturned"]
ReportStatus: TypeAlias = Literal["open", "confirmed", "dismissed"]
ReportCategory: TypeAlias = Literal[
    "nonconsensual", "sexual", "minor", "violence", "hate", "self_harm", "other"
]
DeliveryStatus: TypeAlias = Literal["pending", "delivered", "failed"]


# Decision history.


class HistoryEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One step: ``gated`` (the gate's outcome), ``reviewed``, ``appealed``, ``appeal_decided``,
    ``reported`` (a publisher reported an allowed output) and ``report_decided``.

    ``actor`` is ``gate`` or an API client id; ``note`` is the reviewer's note (none for the
    gate's own step or for filing an appeal, whose statement is on the appeal), and
    ``note_sha256`` its SHA-256, which stays when an erasure removed the note.
    """

    event: HistoryEvent
    from_status: DecisionStatus | None
    to_status: DecisionStatus
    actor: str
    at: datetime
    note: str | None = None
    note_sha256: str | None = None
    ticket_id: str | None = None
    appeal_id: str | None = None


async def append_history(
    conn: asyncpg.Connection,
    *,
    decision_id: str,
    event: HistoryEvent,
    from_status: DecisionStatus,
    to_status: DecisionStatus,
    actor: str,
    note: str | None,
    ticket_id: str | None,
    appeal_id: str | None,
) -> datetime:
    """Append one entry (the table is append-only, and keeps the note's SHA-256; the note
    itself goes to ``review_texts``, which an erasure can delete from); returns its time."""
    [row] = await conn.fetch(
        "INSERT INTO moderation_decision_history (decision_id, event, from_status, to_status,"
        " actor, ticket_id, appeal_id, note_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " RETURNING entry_id, at",
        decision_id,
        event,
        from_status,
        to_status,
        actor,
        ticket_id,
        appeal_id,
        text_sha256(note) if note is not None else None,
    )
    if note is not None:
        await conn.execute(
            "INSERT INTO review_texts (decision_id, entry_id, body) VALUES ($1, $2, $3)",
            decision_id,
            row["entry_id"],
            note,
        )
    at: datetime = row["at"]
    return at


async def history_of(conn: asyncpg.Connection, decision_id: str) -> list[HistoryEntry]:
    """The decision's entries after the gate, oldest first."""
    rows = await conn.fetch(
        "SELECT h.event, h.from_status, h.to_status, h.actor, h.at, t.body AS note,"
        " h.note_sha256, h.ticket_id, h.appeal_id FROM moderation_decision_history h"
        " LEFT JOIN review_texts t ON t.entry_id = h.entry_id"
        " WHERE h.decision_id = $1 ORDER BY h.entry_id",
        decision_id,
    )
    return [HistoryEntry(**dict(row)) for row in rows]


# Appeals.


class Appeal(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    decision_id: str
    ticket_id: str
    client_id: str
    statement: str | None
    """The publisher's words; None once an erasure of a consent the decision relied on
    removed them (``statement_sha256`` stays)."""
    statement_sha256: str
    appealed_status: DecisionStatus
    status: AppealStatus
    created_at: datetime
    decided_at: datetime | None = None


async def appeal_exists(conn: asyncpg.Connection, decision_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM review_appeals WHERE decision_id = $1", decision_id)
    return bool(found)


async def insert_appeal(
    conn: asyncpg.Connection, appeal: Appeal, *, tenant: str, policy_version: str
) -> None:
    """Store the appeal with the policy version of the decision it contests (the KPIs count
    overturned appeals per version)."""
    await conn.execute(
        "INSERT INTO review_appeals (appeal_id, decision_id, ticket_id, client_id, tenant,"
        " statement_sha256, appealed_status, created_at, policy_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        appeal.id,
        appeal.decision_id,
        appeal.ticket_id,
        appeal.client_id,
        tenant,
        appeal.statement_sha256,
        appeal.appealed_status,
        appeal.created_at,
        policy_version,
    )
    if appeal.statement is not None:
        await conn.execute(
            "INSERT INTO review_texts (decision_id, appeal_id, body) VALUES ($1, $2, $3)",
            appeal.decision_id,
            appeal.id,
            appeal.statement,
        )


async def settle_appeal(
    conn: asyncpg.Connection, appeal_id: str, *, outcome: DecisionStatus
) -> Literal["upheld", "overturned"]:
    """Record what the appeal came to: ``overturned`` when the outcome differs."""
    status: Literal["upheld", "overturned"] = await conn.fetchval(
        "UPDATE review_appeals SET status = CASE WHEN appealed_status = $2 THEN 'upheld'"
        " ELSE 'overturned' END, decided_at = now() WHERE appeal_id = $1 AND status = 'open'"
        " RETURNING status",
        appeal_id,
        outcome,
    )
    return status


async def appeal_of(
    conn: asyncpg.Connection, decision_id: str, *, tenant: str | None
) -> Appeal | None:
    """The decision's appeal, if it has one and it belongs to ``tenant`` (any when None)."""
    row = await conn.fetchrow(
        "SELECT a.appeal_id, a.decision_id, a.ticket_id, a.client_id, t.body AS statement,"
        " a.statement_sha256, a.appealed_status, a.status, a.created_at, a.decided_at"
        " FROM review_appeals a LEFT JOIN review_texts t ON t.appeal_id = a.appeal_id"
        " WHERE a.decision_id = $1 AND ($2::text IS NULL OR a.tenant = $2)",
        decision_id,
        tenant,
    )
    if row is None:
        return None
    return Appeal(
        id=row["appeal_id"],
        decision_id=row["decision_id"],
        ticket_id=row["ticket_id"],
        client_id=row["client_id"],
        statement=row["statement"],
        statement_sha256=row["statement_sha256"],
        appealed_status=row["appealed_status"],
        status=row["status"],
        created_at=row["created_at"],
        decided_at=row["decided_at"],
    )


async def appeal_by_id(
    conn: asyncpg.Connection, appeal_id: str, *, tenant: str | None
) -> tuple[str, str] | None:
    """(decision id, status) of the appeal, if it belongs to ``tenant`` (any when None)."""
    row = await conn.fetchrow(
        "SELECT decision_id, status FROM review_appeals"
        " WHERE appeal_id = $1 AND ($2::text IS NULL OR tenant = $2)",
        appeal_id,
        tenant,
    )
    return None if row is None else (row["decision_id"], row["status"])


async def delete_texts_of(conn: asyncpg.Connection, decision_ids: Sequence[str]) -> int:
    """Delete the notes and appeal statements about these decisions; how many there were."""
    deleted = await conn.fetch(
        "DELETE FROM review_texts WHERE decision_id = ANY($1::text[]) RETURNING 1",
        list(decision_ids),
    )
    return len(deleted)


async def appeal_ids_of_tickets(
    conn: asyncpg.Connection, ticket_ids: Sequence[str]
) -> dict[str, str]:
    """The appeal each of these tickets was opened for, by ticket id (tickets without none)."""
    if not ticket_ids:
        return {}
    rows = await conn.fetch(
        "SELECT ticket_id, appeal_id FROM review_appeals WHERE ticket_id = ANY($1::text[])",
        list(ticket_ids),
    )
    return {row["ticket_id"]: row["appeal_id"] for row in rows}


async def appeal_counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    """Appeals filed, decided, and overturned."""
    [row] = await conn.fetch(
        "SELECT count(*) AS filed, count(*) FILTER (WHERE status <> 'open') AS decided,"
        " count(*) FILTER (WHERE status = 'overturned') AS overturned FROM review_appeals"
    )
    return row["filed"], row["decided"], row["overturned"]


class VersionOutcomes(msgspec.Struct, kw_only=True, frozen=True):
    """What humans made of one policy version's decisions after the gate."""

    policy_version: str
    appeals_decided: int
    appeals_overturned: int
    reports_decided: int
    reports_confirmed: int


async def outcomes_by_policy_version(
    conn: asyncpg.Connection, *, since: datetime
) -> list[VersionOutcomes]:
    """Appeals and reports decided since ``since``, per policy version of their decision
    (reports only of outputs the gate itself allowed: the policy's misses)."""
    rows = await conn.fetch(
        "SELECT policy_version, sum(ad) AS ad, sum(ao) AS ao, sum(rd) AS rd, sum(rc) AS rc"
        " FROM (SELECT policy_version, 1 AS ad, (status = 'overturned')::int AS ao, 0 AS rd,"
        " 0 AS rc FROM review_appeals WHERE status <> 'open' AND decided_at >= $1"
        " UNION ALL SELECT policy_version, 0, 0, 1, (status = 'confirmed')::int"
        " FROM review_reports WHERE gate_allowed AND status <> 'open' AND decided_at >= $1) o"
        " GROUP BY policy_version ORDER BY policy_version",
        since,
    )
    return [
        VersionOutcomes(
            policy_version=r["policy_version"],
            appeals_decided=int(r["ad"]),
            appeals_overturned=int(r["ao"]),
            reports_decided=int(r["rd"]),
            reports_confirmed=int(r["rc"]),
        )
        for r in rows
    ]


# Reports of allowed outputs.


class Report(msgspec.Struct, kw_only=True, frozen=True):
    """A publisher's report that an output the gate allowed should not have been."""

    id: str
    decision_id: str
    ticket_id: str
    client_id: str
    category: ReportCategory
    status: ReportStatus
    created_at: datetime
    decided_at: datetime | None = None


_REPORT_COLUMNS = (
    "report_id, decision_id, ticket_id, client_id, category, status, created_at, decided_at"
)


def _report(row: asyncpg.Record) -> Report:
    values = dict(row)
    values["id"] = values.pop("report_id")
    return Report(**values)


async def insert_report(
    conn: asyncpg.Connection,
    report: Report,
    *,
    tenant: str,
    policy_version: str,
    gate_allowed: bool,
) -> None:
    await conn.execute(
        "INSERT INTO review_reports (report_id, decision_id, ticket_id, client_id, tenant,"
        " policy_version, category, created_at, gate_allowed)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        report.id,
        report.decision_id,
        report.ticket_id,
        report.client_id,
        tenant,
        policy_version,
        report.category,
        report.created_at,
        gate_allowed,
    )


async def open_report_of(conn: asyncpg.Connection, decision_id: str) -> Report | None:
    """The decision's report still waiting for a reviewer, if any (there is at most one)."""
    row = await conn.fetchrow(
        f"SELECT {_REPORT_COLUMNS} FROM review_reports"  # noqa: S608 - constant columns
        " WHERE decision_id = $1 AND status = 'open'",
        decision_id,
    )
    return None if row is None else _report(row)


async def settle_report(
    conn: asyncpg.Connection, ticket_id: str, *, outcome: DecisionStatus
) -> ReportStatus | None:
    """Record what the report's ticket came to: ``confirmed`` when the reviewer blocked the
    output, ``dismissed`` otherwise; None when the ticket is no report's."""
    status: ReportStatus | None = await conn.fetchval(
        "UPDATE review_reports SET status = CASE WHEN $2 = 'blocked' THEN 'confirmed'"
        " ELSE 'dismissed' END, decided_at = now() WHERE ticket_id = $1 AND status = 'open'"
        " RETURNING status",
        ticket_id,
        outcome,
    )
    return status


# Takedown webhooks, withdrawals to notify, deliveries and their attempts.


class Webhook(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    url: str
    created_at: datetime
    updated_at: datetime


class PendingWithdrawal(msgspec.Struct, kw_only=True, frozen=True):
    event_id: int
    consent_id: str
    withdrawn_at: datetime


class DeliveryAttempt(msgspec.Struct, kw_only=True, frozen=True):
    attempt: int
    started_at: datetime
    duration_ms: float
    http_status: int | None
    error: str | None


class Delivery(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    consent_id: str | None
    """The withdrawal a takedown notice is about (None for a misuse notice)."""
    suspension_id: str | None
    """The suspension a misuse notice (to an admin client's webhook) is about."""
    client_id: str
    url: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    notice: str
    """The signed notice (compact JWS) as sent on every attempt."""
    history: list[DeliveryAttempt]


class DueDelivery(msgspec.Struct, kw_only=True, frozen=True):
    delivery_id: str
    consent_id: str | None
    suspension_id: str | None
    client_id: str
    url: str
    notice: str
    attempt: int


async def upsert_webhook(
    conn: asyncpg.Connection, *, client_id: str, url: str, created_by: str
) -> Webhook:
    """Set (or replace) the client's webhook URL."""
    [row] = await conn.fetch(
        "INSERT INTO takedown_webhooks (client_id, url, created_by) VALUES ($1, $2, $3)"
        " ON CONFLICT (client_id) DO UPDATE SET url = EXCLUDED.url, updated_at = now()"
        " RETURNING client_id, url, created_at, updated_at",
        client_id,
        url,
        created_by,
    )
    return Webhook(**dict(row))


async def webhooks_of(conn: asyncpg.Connection, client_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(client id, URL) of those of ``client_ids`` that registered a webhook, by client id."""
    if not client_ids:
        return []
    rows = await conn.fetch(
        "SELECT client_id, url FROM takedown_webhooks WHERE client_id = ANY($1::text[])"
        " ORDER BY client_id",
        list(client_ids),
    )
    return [(row["client_id"], row["url"]) for row in rows]


async def pending_withdrawals(conn: asyncpg.Connection, *, limit: int) -> list[PendingWithdrawal]:
    """Withdrawals not yet turned into notices, oldest first, locked (others skip them)."""
    rows = await conn.fetch(
        "SELECT event_id, consent_id, withdrawn_at FROM takedown_events"
        " WHERE processed_at IS NULL ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [PendingWithdrawal(**dict(row)) for row in rows]


async def mark_processed(conn: asyncpg.Connection, event_id: int) -> None:
    await conn.execute(
        "UPDATE takedown_events SET processed_at = now() WHERE event_id = $1", event_id
    )


async def insert_delivery(
    conn: asyncpg.Connection,
    *,
    delivery_id: str,
    event_id: int,
    consent_id: str,
    client_id: str,
    url: str,
    notice: str,
) -> None:
    """A notice to send, due at once."""
    await conn.execute(
        "INSERT INTO takedown_deliveries (delivery_id, event_id, consent_id, client_id,"
        " url, notice, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, now())",
        delivery_id,
        event_id,
        consent_id,
        client_id,
        url,
        notice,
    )


async def insert_misuse_delivery(
    conn: asyncpg.Connection,
    *,
    delivery_id: str,
    suspension_id: str,
    client_id: str,
    url: str,
    notice: str,
) -> None:
    """A misuse notice to an admin client's webhook, due at once."""
    await conn.execute(
        "INSERT INTO takedown_deliveries (delivery_id, suspension_id, client_id, url, notice,"
        " next_attempt_at) VALUES ($1, $2, $3, $4, $5, now())",
        delivery_id,
        suspension_id,
        client_id,
        url,
        notice,
    )


async def all_webhooks(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(client id, URL) of every registered webhook, by client id."""
    rows = await conn.fetch("SELECT client_id, url FROM takedown_webhooks ORDER BY client_id")
    return [(row["client_id"], row["url"]) for row in rows]


async def take_due(conn: asyncpg.Connection, *, limit: int, hold: timedelta) -> list[DueDelivery]:
    """Due deliveries, held for ``hold`` so that no other worker sends them meanwhile."""
    rows = await conn.fetch(
        "UPDATE takedown_deliveries d SET next_attempt_at = now() + $2::interval"
        " FROM (SELECT delivery_id FROM takedown_deliveries WHERE status = 'pending'"
        "  AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1"
        "  FOR UPDATE SKIP LOCKED) due WHERE d.delivery_id = due.delivery_id"
        " RETURNING d.delivery_id, d.consent_id, d.suspension_id, d.client_id, d.url,"
        " d.notice, d.attempts + 1 AS attempt",
        limit,
        hold,
    )
    return [DueDelivery(**dict(r)) for r in rows]


async def insert_attempt(
    conn: asyncpg.Connection,
    *,
    delivery_id: str,
    attempt: int,
    started_at: datetime,
    duration_ms: float,
    http_status: int | None,
    error: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO takedown_attempts (delivery_id, attempt, started_at, duration_ms,"
        " http_status, error) VALUES ($1, $2, $3, $4, $5, $6)",
        delivery_id,
        attempt,
        started_at,
        duration_ms,
        http_status,
        error,
    )


async def update_delivery(
    conn: asyncpg.Connection,
    delivery_id: str,
    *,
    attempts: int,
    status: DeliveryStatus,
    retry_in: timedelta,
) -> None:
    """Record the attempts made and the status; a pending delivery is due in ``retry_in``."""
    await conn.execute(
        "UPDATE takedown_deliveries SET attempts = $2, status = $3,"
        " next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + $4::interval END,"
        " delivered_at = CASE WHEN $3 = 'delivered' THEN now() END WHERE delivery_id = $1",
        delivery_id,
        attempts,
        status,
        retry_in,
    )


async def deliveries(
    conn: asyncpg.Connection,
    *,
    client_id: str | None = None,
    consent_id: str | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """Deliveries, newest first, each with every attempt made."""
    rows = await conn.fetch(
        "SELECT delivery_id, consent_id, suspension_id, client_id, url, status, attempts,"
        " created_at, next_attempt_at, delivered_at, notice FROM takedown_deliveries"
        " WHERE ($1::text IS NULL OR client_id = $1) AND ($2::text IS NULL OR consent_id = $2)"
        " ORDER BY created_at DESC, delivery_id LIMIT $3",
        client_id,
        consent_id,
        limit,
    )
    attempts: dict[str, list[DeliveryAttempt]] = {r["delivery_id"]: [] for r in rows}
    for a in await conn.fetch(
        "SELECT delivery_id, attempt, started_at, duration_ms, http_status, error"
        " FROM takedown_attempts WHERE delivery_id = ANY ($1) ORDER BY delivery_id, attempt",
        list(attempts),
    ):
        values = dict(a)
        attempts[values.pop("delivery_id")].append(DeliveryAttempt(**values))
    return [
        Delivery(
            id=r["delivery_id"],
            consent_id=r["consent_id"],
            suspension_id=r["suspension_id"],
            client_id=r["client_id"],
            url=r["url"],
            status=r["status"],
            attempts=r["attempts"],
            created_at=r["created_at"],
            next_attempt_at=r["next_attempt_at"],
            delivered_at=r["delivered_at"],
            notice=r["notice"],
            history=attempts[r["delivery_id"]],
        )
        for r in rows
    ]
