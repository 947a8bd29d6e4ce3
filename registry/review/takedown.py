"""Consent withdrawn after publishing: what it affects, and signed takedown notices to publishers.

A withdrawal lists the gate decisions that relied on the consent's tokens
(:func:`affected_decisions`, called by the consent domain) and the signed outputs tied to
them. Each publisher client may register one webhook URL (on REGISTRY_WEBHOOK_HOSTS); when
a consent is withdrawn, every publisher with a webhook and an affected decision gets one
notice, a JWS (``typ: takedown+jwt``) signed with the registry's key ring that lists its own
affected decision, output and generation ids, verifiable with the public JWKS.

Delivery is an outbox: a trigger on ``consent_records`` records the withdrawal in the
withdrawing transaction (``takedown_events``); the background worker turns each event into
notices (``takedown_deliveries``) and posts them, retrying with exponential backoff and
recording every attempt (``takedown_attempts``). Several service processes may run the
worker: rows are taken with ``FOR UPDATE SKIP LOCKED`` and a delivery in flight is held for
a while, so a notice is not sent twice at once. Notices are only ever about the publisher's
own decisions and carry ids only, no personal data.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

import msgspec

from registry.core import audit
from registry.core.auth import Role, get_client
from registry.review.errors import ConsentIdInvalid, WebhookClientInvalid

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable, Collection

    import asyncpg

    from registry.core.audit import JwsSigner

__all__ = [
    "TAKEDOWN_TYP",
    "AffectedDecision",
    "AffectedOutput",
    "AffectedView",
    "Backoff",
    "Delivery",
    "DeliveryAttempt",
    "NoticeSender",
    "SendResult",
    "TakedownWorker",
    "Webhook",
    "affected",
    "affected_decisions",
    "check_consent_id",
    "list_deliveries",
    "register_webhook",
]

log = logging.getLogger(__name__)

TAKEDOWN_TYP = "takedown+jwt"
DeliveryStatus: TypeAlias = Literal["pending", "delivered", "failed"]
_CONSENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_EVENTS_PER_ROUND = 20
_DELIVERIES_PER_ROUND = 10


# What a withdrawal affects.


class AffectedDecision(msgspec.Struct, kw_only=True, frozen=True):
    decision_id: str
    generation_id: str
    client_id: str
    """The publisher client that asked the gate."""
    stage: str
    status: str
    current_status: str
    decided_at: datetime


class AffectedOutput(msgspec.Struct, kw_only=True, frozen=True):
    output_id: str
    generation_id: str
    decision_id: str | None
    sha256: str
    signed_at: datetime


class AffectedView(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    decisions: list[AffectedDecision]
    outputs: list[AffectedOutput]


def check_consent_id(consent_id: str) -> str:
    if not _CONSENT_ID.match(consent_id):
        raise ConsentIdInvalid("a consent id is 1-128 letters, digits, '_' or '-'")
    return consent_id


async def _decisions(
    conn: asyncpg.Connection,
    consent_id: str,
    *,
    tenant: str | None = None,
    client_id: str | None = None,
) -> list[AffectedDecision]:
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


async def _outputs(
    conn: asyncpg.Connection, consent_id: str, decision_ids: Collection[str] | None
) -> list[AffectedOutput]:
    """Outputs signed with the consent's tokens; with ``decision_ids``, only those tied to them."""
    rows = await conn.fetch(
        "SELECT o.output_id, o.generation_id, o.decision_id, o.sha256, o.created_at AS signed_at"
        " FROM signed_outputs o WHERE o.output_id IN (SELECT output_id FROM"
        "  signed_output_consents WHERE consent_id = $1)"
        " AND ($2::text[] IS NULL OR o.decision_id = ANY ($2)) ORDER BY o.id",
        consent_id,
        None if decision_ids is None else list(decision_ids),
    )
    return [AffectedOutput(**dict(r)) for r in rows]


async def affected_decisions(conn: asyncpg.Connection, consent_id: str) -> list[dict[str, Any]]:
    """The gate decisions that relied on ``consent_id``'s tokens, as plain JSON values."""
    found: list[dict[str, Any]] = msgspec.to_builtins(await _decisions(conn, consent_id))
    return found


async def affected(
    conn: asyncpg.Connection, consent_id: str, *, tenant: str | None
) -> AffectedView:
    """What ``consent_id`` affects, as ``tenant`` may see it (everything when None).

    A tenant sees its own decisions and the outputs signed for them; an unknown consent id
    and a consent that affected nothing of the tenant's look the same (empty lists).
    """
    decisions = await _decisions(conn, check_consent_id(consent_id), tenant=tenant)
    scope = None if tenant is None else [d.decision_id for d in decisions]
    outputs = await _outputs(conn, consent_id, scope)
    return AffectedView(consent_id=consent_id, decisions=decisions, outputs=outputs)


# Webhooks.


class Webhook(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    url: str
    created_at: datetime
    updated_at: datetime


async def register_webhook(
    conn: asyncpg.Connection,
    *,
    client_id: str,
    url: str,
    check_url: Callable[[str], object],
    actor: str,
) -> Webhook:
    """Set (or replace) the takedown webhook of a publisher client.

    ``check_url`` raises for a URL the operator does not allow (``WebhookSender.check``).
    """
    check_url(url)
    client = await get_client(conn, client_id)
    if client is None or not client.has(Role.PUBLISHER):
        raise WebhookClientInvalid("webhooks are for existing, enabled publisher clients")
    [row] = await conn.fetch(
        "INSERT INTO takedown_webhooks (client_id, url, created_by) VALUES ($1, $2, $3)"
        " ON CONFLICT (client_id) DO UPDATE SET url = EXCLUDED.url, updated_at = now()"
        " RETURNING client_id, url, created_at, updated_at",
        client_id,
        url,
        actor,
    )
    return Webhook(**dict(row))


# Deliveries.


class Backoff(msgspec.Struct, kw_only=True, frozen=True):
    """Retry schedule: ``base`` seconds after the first failure, doubling up to ``cap``."""

    base: float
    cap: float
    max_attempts: int

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.cap, self.base * 2 ** max(attempts - 1, 0)))


class SendResult(msgspec.Struct, kw_only=True, frozen=True):
    """One attempt: the receiver's status, or an ``error`` code when it did not answer 2xx."""

    started_at: datetime
    duration_ms: float
    http_status: int | None = None
    error: str | None = None


class NoticeSender(Protocol):
    async def send(self, url: str, notice: str, *, delivery_id: str, attempt: int) -> SendResult:
        """POST ``notice`` to ``url``; never raises for a failed delivery."""
        ...


class DeliveryAttempt(msgspec.Struct, kw_only=True, frozen=True):
    attempt: int
    started_at: datetime
    duration_ms: float
    http_status: int | None
    error: str | None


class Delivery(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    consent_id: str
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


class _Due(msgspec.Struct, kw_only=True, frozen=True):
    delivery_id: str
    consent_id: str
    client_id: str
    url: str
    notice: str
    attempt: int


async def _create_notices(
    conn: asyncpg.Connection, *, signer: JwsSigner, issuer: str
) -> list[tuple[str, str, str]]:
    """Turn pending withdrawals into one signed notice per publisher with a webhook."""
    events = await conn.fetch(
        "SELECT event_id, consent_id, withdrawn_at FROM takedown_events"
        " WHERE processed_at IS NULL ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED",
        _EVENTS_PER_ROUND,
    )
    created: list[tuple[str, str, str]] = []
    for event in events:
        hooks = await conn.fetch(
            "SELECT w.client_id, w.url FROM takedown_webhooks w"
            " JOIN api_clients c USING (client_id) WHERE c.disabled_at IS NULL"
            " AND w.client_id IN (SELECT d.client_id FROM moderation_decisions d"
            "  JOIN moderation_decision_consents m USING (decision_id) WHERE m.consent_id = $1)"
            " ORDER BY w.client_id",
            event["consent_id"],
        )
        for hook in hooks:
            decisions = await _decisions(conn, event["consent_id"], client_id=hook["client_id"])
            outputs = await _outputs(conn, event["consent_id"], [d.decision_id for d in decisions])
            delivery_id = "dlv_" + secrets.token_urlsafe(16)
            notice = signer.sign_jws(
                {
                    "iss": issuer,
                    "aud": hook["client_id"],
                    "iat": int(time.time()),
                    "jti": delivery_id,
                    "event": "consent.withdrawn",
                    "consent_id": event["consent_id"],
                    "withdrawn_at": event["withdrawn_at"].astimezone(UTC).isoformat(),
                    "decisions": [d.decision_id for d in decisions],
                    "generations": sorted({d.generation_id for d in decisions}),
                    "outputs": [o.output_id for o in outputs],
                },
                typ=TAKEDOWN_TYP,
            )
            await conn.execute(
                "INSERT INTO takedown_deliveries (delivery_id, event_id, consent_id, client_id,"
                " url, notice, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, now())",
                delivery_id,
                event["event_id"],
                event["consent_id"],
                hook["client_id"],
                hook["url"],
                notice,
            )
            created.append((delivery_id, event["consent_id"], hook["client_id"]))
        await conn.execute(
            "UPDATE takedown_events SET processed_at = now() WHERE event_id = $1",
            event["event_id"],
        )
    return created


async def _take_due(conn: asyncpg.Connection, *, hold: timedelta) -> list[_Due]:
    """Due deliveries, held for ``hold`` so that no other worker sends them meanwhile."""
    rows = await conn.fetch(
        "UPDATE takedown_deliveries d SET next_attempt_at = now() + $2::interval"
        " FROM (SELECT delivery_id FROM takedown_deliveries WHERE status = 'pending'"
        "  AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1"
        "  FOR UPDATE SKIP LOCKED) due WHERE d.delivery_id = due.delivery_id"
        " RETURNING d.delivery_id, d.consent_id, d.client_id, d.url, d.notice,"
        " d.attempts + 1 AS attempt",
        _DELIVERIES_PER_ROUND,
        hold,
    )
    return [_Due(**dict(r)) for r in rows]


async def _record_attempt(
    conn: asyncpg.Connection, due: _Due, result: SendResult, backoff: Backoff
) -> DeliveryStatus:
    await conn.execute(
        "INSERT INTO takedown_attempts (delivery_id, attempt, started_at, duration_ms,"
        " http_status, error) VALUES ($1, $2, $3, $4, $5, $6)",
        due.delivery_id,
        due.attempt,
        result.started_at,
        result.duration_ms,
        result.http_status,
        result.error,
    )
    status: DeliveryStatus
    if result.error is None:
        status = "delivered"
    elif due.attempt >= backoff.max_attempts:
        status = "failed"
    else:
        status = "pending"
    await conn.execute(
        "UPDATE takedown_deliveries SET attempts = $2, status = $3,"
        " next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + $4::interval END,"
        " delivered_at = CASE WHEN $3 = 'delivered' THEN now() END WHERE delivery_id = $1",
        due.delivery_id,
        due.attempt,
        status,
        backoff.delay(due.attempt),
    )
    return status


async def list_deliveries(
    conn: asyncpg.Connection,
    *,
    client_id: str | None = None,
    consent_id: str | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """Deliveries, newest first, each with every attempt made."""
    rows = await conn.fetch(
        "SELECT delivery_id, consent_id, client_id, url, status, attempts, created_at,"
        " next_attempt_at, delivered_at, notice FROM takedown_deliveries"
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


class TakedownWorker:
    """Creates and sends takedown notices; one per service process, safe to run in several."""

    def __init__(
        self,
        *,
        transaction: Callable[[], contextlib.AbstractAsyncContextManager[asyncpg.Connection]],
        signer: JwsSigner,
        issuer: str,
        sender: NoticeSender,
        backoff: Backoff,
        poll_interval: float,
        hold: timedelta,
    ) -> None:
        self._transaction = transaction
        self._signer = signer
        self._issuer = issuer
        self._sender = sender
        self._backoff = backoff
        self._poll_interval = poll_interval
        self._hold = hold

    async def run(self) -> None:
        """Work until cancelled; a failing round is logged and retried on the next tick."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a failed round
                # The type only: driver messages can carry row data.
                log.warning("takedown round failed: %s", type(exc).__name__)
            await asyncio.sleep(self._poll_interval)

    async def run_once(self) -> int:
        """One round: new notices, then every due delivery; returns the attempts made."""
        async with self._transaction() as conn:
            created = await _create_notices(conn, signer=self._signer, issuer=self._issuer)
            for delivery_id, consent_id, client_id in created:
                await audit.append(
                    conn,
                    actor="system",
                    tenant=None,
                    action="takedown.notice_created",
                    subject_type="takedown_delivery",
                    subject_id=delivery_id,
                    payload={"consent_id": consent_id, "client_id": client_id},
                )
        async with self._transaction() as conn:
            due = await _take_due(conn, hold=self._hold)
        results = await asyncio.gather(
            *(
                self._sender.send(d.url, d.notice, delivery_id=d.delivery_id, attempt=d.attempt)
                for d in due
            )
        )
        for item, result in zip(due, results, strict=True):
            async with self._transaction() as conn:
                status = await _record_attempt(conn, item, result, self._backoff)
                if status != "pending":
                    await audit.append(
                        conn,
                        actor="system",
                        tenant=None,
                        action=f"takedown.{status}",
                        subject_type="takedown_delivery",
                        subject_id=item.delivery_id,
                        payload={
                            "consent_id": item.consent_id,
                            "client_id": item.client_id,
                            "attempts": item.attempt,
                        },
                    )
        return len(due)
