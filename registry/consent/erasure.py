"""Erasure: withdraw a consent (if still active), then make its personal data unrecoverable.

The record's data key is deleted, so its sealed fields (kept in backups, say) can no longer
be read; the record keeps only what is not personal. The enrolled signer goes too, once no
other live record holds data signed by its key. What other parts of the service derived
from the consent (the gate's decisions made with its tokens, their review images) is erased
in the same transaction, through the hook the composition root injects. The deleted keys'
rows are then shredded on disk by ``registry.consent.shredding``, outside the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from registry.consent import repository
from registry.consent.revocation import owned_for_update, withdraw_record
from registry.consent.views import Erased, Withdrawn
from registry.core.audit import AuditRecord

if TYPE_CHECKING:
    import asyncpg

    from registry.consent.revocation import WithdrawalListers
    from registry.core.auth import Client

__all__ = ["erase"]


async def erase(
    conn: asyncpg.Connection, listers: WithdrawalListers, *, actor: Client, consent_id: str
) -> Erased:
    """Withdraw (if still active), then make the record's personal data unrecoverable.

    Erasing an erased record changes nothing and answers with its tombstone again (a client
    retrying after a lost answer must not see an error for what it asked for).
    """
    record = await owned_for_update(conn, actor, consent_id, erased_too=True)
    if record.status == "erased" and record.erased_at is not None:
        signer = await repository.signer_by_id(conn, record.signer_id) if record.signer_id else None
        return Erased(
            consent_id=consent_id,
            erased_at=record.erased_at,
            withdrawal=None,
            signer_erased=signer is not None and signer.erased_at is not None,
            events=(),
        )
    now = datetime.now(UTC)
    withdrawn: Withdrawn | None = None
    events: list[AuditRecord] = []
    if record.status == "active":
        withdrawn = await withdraw_record(
            conn, listers, record, by=f"erasure:{actor.client_id}", withdrawal_sha256=None, now=now
        )
        events.extend(withdrawn.events)
    await repository.mark_erased(conn, consent_id, now)
    if record.data_key_id is not None:
        await repository.delete_data_key(conn, record.data_key_id)
    derived = await listers.erase_derived(conn, consent_id, now) if listers.erase_derived else 0
    signer_event = await _erase_signer(conn, record, now)
    if signer_event is not None:
        events.append(signer_event)
    events.append(
        AuditRecord(
            action="consent.erased",
            subject_type="consent",
            subject_id=consent_id,
            payload={"signer_erased": signer_event is not None, "derived_erased": derived},
        )
    )
    return Erased(
        consent_id=consent_id,
        erased_at=now,
        withdrawal=withdrawn,
        signer_erased=signer_event is not None,
        events=tuple(events),
    )


async def _erase_signer(
    conn: asyncpg.Connection, record: repository.RecordRow, now: datetime
) -> AuditRecord | None:
    """Erase the record's enrolled signer unless another live record still relies on it.

    Returns the audit record of the erasure, or None when the signer stays (or there is none).
    """
    if record.signer_id is None or await repository.signer_in_use(
        conn, record.signer_id, besides=record.consent_id
    ):
        return None
    signer = await repository.signer_by_id(conn, record.signer_id)
    if signer is None or signer.erased_at is not None:
        return None
    await repository.erase_signer(conn, signer.signer_id, now)
    if signer.data_key_id is not None:
        await repository.delete_data_key(conn, signer.data_key_id)
    return AuditRecord(
        action="consent_signer.erased",
        subject_type="consent_signer",
        subject_id=signer.signer_id,
        payload={"consent_id": record.consent_id},
    )
