"""Suspending a consent, and resuming it: a reversible stop, unlike withdrawal.

A suspension holds a consent while something about it is settled (a dispute over who signed
it, a complaint being investigated) without ending it: its tokens read SUSPENDED (2) online
and in their status lists at once, no new token is issued, and resuming makes the same tokens
VALID (0) again. Withdrawal and erasure still apply to a suspended consent and end the
suspension; a withdrawn consent is never resumed.

Tokens of 1-bit status lists (issued before suspension existed) cannot read SUSPENDED; a
suspension revokes them (INVALID, 1) and resuming leaves them revoked, since the draft's
INVALID is not a state a relying party expects to see lifted. They live at most
REGISTRY_TOKEN_MAX_TTL; the generator obtains new ones after resumption.

Suspending a suspended consent is refused (consent_suspended), as is resuming one that is not
suspended: the suspension on record keeps its own time, author and reason, and a caller that
lost the answer to a retry reads the state with ``GET /v1/consents/{id}``.

The optional reason is free text that may name people; only its SHA-256 is kept (in the audit
event), never the text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from registry.consent import repository, status
from registry.consent.crypto import text_sha256
from registry.consent.errors import (
    ConsentNotActiveError,
    ConsentNotSuspendedError,
    ConsentSuspendedError,
    SuspensionReasonInvalidError,
)
from registry.consent.records import status_of
from registry.consent.revocation import MAX_REASON, owned_for_update
from registry.consent.views import Resumed, Suspended
from registry.core.audit import AuditRecord

if TYPE_CHECKING:
    import asyncpg

    from registry.core.auth import Client

__all__ = ["resume", "suspend"]


async def suspend(
    conn: asyncpg.Connection, *, actor: Client, consent_id: str, reason: str | None
) -> Suspended:
    """Suspend an active consent of the actor's tenant (any tenant's, for an admin)."""
    payload = _reason(reason)
    record = await owned_for_update(conn, actor, consent_id)
    if record.status != "active":
        raise ConsentNotActiveError(f"the consent is {record.status}")
    if record.suspended_at is not None:
        raise ConsentSuspendedError("the consent is suspended already")
    now = datetime.now(UTC)
    await repository.mark_suspended(conn, consent_id, at=now, by=actor.client_id)
    suspended, revoked = await status.suspend_consent_tokens(conn, consent_id)
    event = AuditRecord(
        action="consent.suspended",
        subject_type="consent",
        subject_id=consent_id,
        payload={
            "by": actor.client_id,
            "suspended_tokens": suspended,
            "revoked_tokens": revoked,
            **payload,
        },
    )
    return Suspended(
        consent_id=consent_id,
        suspended_at=now,
        suspended_by=actor.client_id,
        suspended_tokens=suspended,
        revoked_tokens=revoked,
        events=(event,),
    )


async def resume(
    conn: asyncpg.Connection, *, actor: Client, consent_id: str, reason: str | None
) -> Resumed:
    """End the suspension of a consent: its suspended tokens are valid again."""
    payload = _reason(reason)
    record = await owned_for_update(conn, actor, consent_id)
    if record.status != "active":
        raise ConsentNotActiveError(f"the consent is {record.status}")
    if record.suspended_at is None:
        raise ConsentNotSuspendedError("the consent is not suspended")
    now = datetime.now(UTC)
    await repository.mark_resumed(conn, consent_id)
    restored = await status.restore_consent_tokens(conn, consent_id)
    event = AuditRecord(
        action="consent.resumed",
        subject_type="consent",
        subject_id=consent_id,
        payload={
            "by": actor.client_id,
            "suspended_at": record.suspended_at.isoformat(),
            "restored_tokens": restored,
            **payload,
        },
    )
    resumed = msgspec.structs.replace(record, suspended_at=None, suspended_by=None)
    return Resumed(
        consent_id=consent_id,
        resumed_at=now,
        status=status_of(resumed, now),
        restored_tokens=restored,
        events=(event,),
    )


def _reason(reason: str | None) -> dict[str, Any]:
    """The audit payload's part for the reason: its SHA-256 only (the text may name people)."""
    if reason is None:
        return {}
    if not 0 < len(reason.strip()) <= MAX_REASON:
        raise SuspensionReasonInvalidError(f"a reason, when given, is 1-{MAX_REASON} characters")
    return {"reason_sha256": text_sha256(reason)}
