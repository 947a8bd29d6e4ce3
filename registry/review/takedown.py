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
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import msgspec

from registry.core.auth import Role, enabled_clients, get_client
from registry.gate import repository as gate_repository
from registry.gate.repository import AffectedDecision
from registry.provenance import repository as provenance_repository
from registry.provenance.repository import AffectedOutput
from registry.review import repository
from registry.review.errors import ConsentIdInvalid, WebhookClientInvalid
from registry.review.repository import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    DueDelivery,
    Webhook,
)

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable

    import asyncpg

    from registry.core.audit import JwsSigner
    from registry.core.uow import UnitOfWork
    from registry.gate.repository.misuse import SuspensionRow

__all__ = [
    "MISUSE_TYP",
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
    "misuse_notices",
    "register_webhook",
]

log = logging.getLogger(__name__)

TAKEDOWN_TYP = "takedown+jwt"
# The operator's notice of a suspension (registry.gate.misuse): its own typ, so that no
# receiver can take one kind of notice for the other.
MISUSE_TYP = "misuse+jwt"
_CONSENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_EVENTS_PER_ROUND = 20
_DELIVERIES_PER_ROUND = 10
# The worker acts as the service itself, for no tenant.
_SYSTEM = "system"


# What a withdrawal affects.


class AffectedView(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    decisions: list[AffectedDecision]
    outputs: list[AffectedOutput]


def check_consent_id(consent_id: str) -> str:
    if not _CONSENT_ID.match(consent_id):
        raise ConsentIdInvalid("a consent id is 1-128 letters, digits, '_' or '-'")
    return consent_id


async def affected_decisions(conn: asyncpg.Connection, consent_id: str) -> list[dict[str, Any]]:
    """The gate decisions that relied on ``consent_id``'s tokens, as plain JSON values."""
    decisions = await gate_repository.decisions_using_consent(conn, consent_id)
    found: list[dict[str, Any]] = msgspec.to_builtins(decisions)
    return found


async def affected(
    conn: asyncpg.Connection, consent_id: str, *, tenant: str | None
) -> AffectedView:
    """What ``consent_id`` affects, as ``tenant`` may see it (everything when None).

    A tenant sees its own decisions and the outputs signed for them; an unknown consent id
    and a consent that affected nothing of the tenant's look the same (empty lists).
    """
    decisions = await gate_repository.decisions_using_consent(
        conn, check_consent_id(consent_id), tenant=tenant
    )
    scope = None if tenant is None else [d.decision_id for d in decisions]
    outputs = await provenance_repository.outputs_signed_with(conn, consent_id, scope)
    return AffectedView(consent_id=consent_id, decisions=decisions, outputs=outputs)


# Webhooks.


async def register_webhook(
    uow: UnitOfWork,
    *,
    client_id: str,
    url: str,
    check_url: Callable[[str], object],
) -> Webhook:
    """Set (or replace) the takedown webhook of a publisher client, and record it.

    ``check_url`` raises for a URL the operator does not allow (``WebhookSender.check``).
    """
    check_url(url)
    conn = uow.conn
    client = await get_client(conn, client_id)
    if client is None or not (client.has(Role.PUBLISHER) or client.has(Role.ADMIN)):
        raise WebhookClientInvalid(
            "webhooks are for existing, enabled publisher clients (takedown notices) and "
            "admin clients (the operator's misuse notices)"
        )
    hook = await repository.upsert_webhook(conn, client_id=client_id, url=url, created_by=uow.actor)
    # The host only: a path can carry the receiver's own secret.
    uow.record(
        "webhook.registered",
        subject_type="api_client",
        subject_id=hook.client_id,
        payload={"host": urlsplit(hook.url).hostname},
    )
    return hook


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


async def _create_notices(
    conn: asyncpg.Connection, *, signer: JwsSigner, issuer: str
) -> list[tuple[str, str, str]]:
    """Turn pending withdrawals into one signed notice per publisher with a webhook."""
    events = await repository.pending_withdrawals(conn, limit=_EVENTS_PER_ROUND)
    created: list[tuple[str, str, str]] = []
    for event in events:
        consent_id = event.consent_id
        for client_id, url in await _webhooks_to_notify(conn, consent_id):
            decisions = await gate_repository.decisions_using_consent(
                conn, consent_id, client_id=client_id
            )
            outputs = await provenance_repository.outputs_signed_with(
                conn, consent_id, [d.decision_id for d in decisions]
            )
            delivery_id = "dlv_" + secrets.token_urlsafe(16)
            notice = signer.sign_jws(
                {
                    "iss": issuer,
                    "aud": client_id,
                    "iat": int(time.time()),
                    "jti": delivery_id,
                    "event": "consent.withdrawn",
                    "consent_id": consent_id,
                    "withdrawn_at": event.withdrawn_at.astimezone(UTC).isoformat(),
                    "decisions": [d.decision_id for d in decisions],
                    "generations": sorted({d.generation_id for d in decisions}),
                    "outputs": [o.output_id for o in outputs],
                },
                typ=TAKEDOWN_TYP,
            )
            await repository.insert_delivery(
                conn,
                delivery_id=delivery_id,
                event_id=event.event_id,
                consent_id=consent_id,
                client_id=client_id,
                url=url,
                notice=notice,
            )
            created.append((delivery_id, consent_id, client_id))
        await repository.mark_processed(conn, event.event_id)
    return created


async def misuse_notices(
    conn: asyncpg.Connection, suspension: SuspensionRow, *, signer: JwsSigner, issuer: str
) -> list[str]:
    """Queue one signed notice of ``suspension`` for the webhook of every enabled admin
    client (the operator), in the tripping transaction; the worker sends them like takedown
    notices. Returns the delivery ids."""
    created: list[str] = []
    for client_id, url in await repository.all_webhooks(conn):
        # None for a revoked client: get_client reads enabled clients only.
        client = await get_client(conn, client_id)
        if client is None or not client.has(Role.ADMIN):
            continue
        delivery_id = "dlv_" + secrets.token_urlsafe(16)
        notice = signer.sign_jws(
            {
                "iss": issuer,
                "aud": client_id,
                "iat": int(time.time()),
                "jti": delivery_id,
                "event": "misuse.suspended",
                "suspension_id": suspension.suspension_id,
                "subject_kind": suspension.subject_kind,
                "subject": suspension.subject,
                "condition_id": suspension.condition_id,
                "policy_version": suspension.policy_version,
                "tripped_at": suspension.tripped_at.astimezone(UTC).isoformat(),
                "window_minutes": suspension.window_minutes,
                "decisions": suspension.decisions,
                "blocked": suspension.blocked,
                "hash_matches": suspension.hash_matches,
            },
            typ=MISUSE_TYP,
        )
        await repository.insert_misuse_delivery(
            conn,
            delivery_id=delivery_id,
            suspension_id=suspension.suspension_id,
            client_id=client_id,
            url=url,
            notice=notice,
        )
        created.append(delivery_id)
    return created


async def _webhooks_to_notify(conn: asyncpg.Connection, consent_id: str) -> list[tuple[str, str]]:
    """(client id, URL) of every enabled publisher with a webhook that asked the gate about
    an image made with the consent's tokens, by client id."""
    hooks = await repository.webhooks_of(
        conn, await gate_repository.clients_using_consent(conn, consent_id)
    )
    if not hooks:
        return []
    enabled = await enabled_clients(conn, [client_id for client_id, _ in hooks])
    return [(client_id, url) for client_id, url in hooks if client_id in enabled]


async def _take_due(conn: asyncpg.Connection, *, hold: timedelta) -> list[DueDelivery]:
    """Due deliveries, held for ``hold`` so that no other worker sends them meanwhile."""
    return await repository.take_due(conn, limit=_DELIVERIES_PER_ROUND, hold=hold)


async def _record_attempt(
    conn: asyncpg.Connection, due: DueDelivery, result: SendResult, backoff: Backoff
) -> DeliveryStatus:
    await repository.insert_attempt(
        conn,
        delivery_id=due.delivery_id,
        attempt=due.attempt,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        http_status=result.http_status,
        error=result.error,
    )
    status: DeliveryStatus
    if result.error is None:
        status = "delivered"
    elif due.attempt >= backoff.max_attempts:
        status = "failed"
    else:
        status = "pending"
    await repository.update_delivery(
        conn,
        due.delivery_id,
        attempts=due.attempt,
        status=status,
        retry_in=backoff.delay(due.attempt),
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
    return await repository.deliveries(
        conn, client_id=client_id, consent_id=consent_id, limit=limit
    )


class TakedownWorker:
    """Creates and sends takedown notices; one per service process, safe to run in several."""

    def __init__(
        self,
        *,
        unit_of_work: Callable[[str], contextlib.AbstractAsyncContextManager[UnitOfWork]],
        signer: JwsSigner,
        issuer: str,
        sender: NoticeSender,
        backoff: Backoff,
        poll_interval: float,
        hold: timedelta,
    ) -> None:
        self._unit_of_work = unit_of_work
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
        async with self._unit_of_work(_SYSTEM) as uow:
            created = await _create_notices(uow.conn, signer=self._signer, issuer=self._issuer)
            for delivery_id, consent_id, client_id in created:
                uow.record(
                    "takedown.notice_created",
                    subject_type="takedown_delivery",
                    subject_id=delivery_id,
                    payload={"consent_id": consent_id, "client_id": client_id},
                )
        async with self._unit_of_work(_SYSTEM) as uow:
            due = await _take_due(uow.conn, hold=self._hold)
        results = await asyncio.gather(
            *(
                self._sender.send(d.url, d.notice, delivery_id=d.delivery_id, attempt=d.attempt)
                for d in due
            )
        )
        for item, result in zip(due, results, strict=True):
            async with self._unit_of_work(_SYSTEM) as uow:
                status = await _record_attempt(uow.conn, item, result, self._backoff)
                if status != "pending":
                    uow.record(
                        f"takedown.{status}",
                        subject_type="takedown_delivery",
                        subject_id=item.delivery_id,
                        payload={
                            "consent_id": item.consent_id,
                            "suspension_id": item.suspension_id,
                            "client_id": item.client_id,
                            "attempts": item.attempt,
                        },
                    )
        return len(due)
