"""Withdrawing a consent: by its signer's signed withdrawal, or by an admin giving a reason.

Withdrawal revokes every token issued from the consent at once (their status list entries
turn invalid) and lists what was made with them, so a publisher can take it down. The parts
of the service built on consent report what they made through ``WithdrawalListers``, which
the composition root injects, so this domain never imports them. The signed withdrawal
itself is ``withdrawal``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from keys.errors import KeysError
from keys.jwk import load_public_jwk
from registry.consent import repository, status
from registry.consent.crypto import text_sha256
from registry.consent.errors import (
    ConsentNotActiveError,
    ConsentNotFoundError,
    DataUnavailableError,
    WithdrawalRequiredError,
)
from registry.consent.records import open_record
from registry.consent.views import Affected, Withdrawn
from registry.consent.withdrawal import verify_withdrawal
from registry.core.audit import AuditRecord
from registry.core.auth import Role

if TYPE_CHECKING:
    import asyncpg

    from keys.jwk import PublicKey
    from registry.consent.records import DataKeys
    from registry.core.auth import Client

__all__ = [
    "MAX_REASON",
    "ProducedUnder",
    "WithdrawalListers",
    "affected",
    "owned_for_update",
    "withdraw",
    "withdraw_record",
]

MAX_REASON: Final = 1000

ProducedUnder = Callable[["asyncpg.Connection", str], Awaitable[list[dict[str, Any]]]]
"""Lists what one part of the service made with a consent's tokens (JSON values)."""


EraseDerived = Callable[["asyncpg.Connection", str, datetime], Awaitable[int]]
"""Erases, in the erasure's transaction, what other parts of the service derived from a
consent (the gate's decisions, their review images); how many records it erased."""


@dataclass(frozen=True, kw_only=True)
class WithdrawalListers:
    """The parts of the service built on consent that report what a withdrawal affects, and
    erase what they derived from a consent when it is erased.

    Injected by the composition root, so this domain never imports the features that sit on
    top of it: provenance lists signed outputs, moderation the gate decisions.
    """

    outputs: ProducedUnder | None = None
    decisions: ProducedUnder | None = None
    erase_derived: EraseDerived | None = None


async def affected(
    conn: asyncpg.Connection, listers: WithdrawalListers, consent_id: str
) -> Affected:
    """Everything produced under the consent's tokens, for takedown."""
    tokens = await repository.tokens_of(conn, consent_id)
    return Affected(
        tokens=[t.jti for t in tokens],
        outputs=await listers.outputs(conn, consent_id) if listers.outputs else [],
        decisions=await listers.decisions(conn, consent_id) if listers.decisions else [],
    )


async def withdraw(
    conn: asyncpg.Connection,
    keys: DataKeys,
    listers: WithdrawalListers,
    *,
    actor: Client,
    consent_id: str,
    withdrawal: str | None,
    reason: str | None,
) -> Withdrawn:
    """Withdraw with the signer's signed withdrawal, or as an admin with a reason."""
    record = await owned_for_update(conn, actor, consent_id)
    now = datetime.now(UTC)
    if withdrawal is not None:
        signer_key = await _signer_key(conn, keys, record)
        verify_withdrawal(withdrawal, consent_id=consent_id, signer_key=signer_key, now=now)
        return await withdraw_record(
            conn, listers, record, by="signer", withdrawal_sha256=text_sha256(withdrawal), now=now
        )
    if actor.has(Role.ADMIN) and reason is not None and 0 < len(reason.strip()) <= MAX_REASON:
        return await withdraw_record(
            conn,
            listers,
            record,
            by=f"admin:{actor.client_id}",
            withdrawal_sha256=None,
            now=now,
            reason=reason,
        )
    raise WithdrawalRequiredError(
        "send the withdrawal signed by the consent's signer key"
        + (
            f" (or, as admin, a reason of 1-{MAX_REASON} characters)"
            if actor.has(Role.ADMIN)
            else ""
        )
    )


async def owned_for_update(
    conn: asyncpg.Connection, actor: Client, consent_id: str, *, erased_too: bool = False
) -> repository.RecordRow:
    """The record, locked, if ``actor`` may withdraw, erase, suspend or resume it: its
    tenant's, or an admin.
    An erased record is refused (consent_not_active) unless ``erased_too``."""
    record = await repository.get_record(conn, consent_id, lock="update")
    if record is None or not (actor.has(Role.ADMIN) or record.tenant == actor.tenant):
        raise ConsentNotFoundError("no consent with this id for this tenant")
    if record.status == "erased" and erased_too:
        return record
    if record.status not in {"active", "withdrawn"}:
        raise ConsentNotActiveError(f"the consent is {record.status}")
    return record


async def _signer_key(
    conn: asyncpg.Connection, keys: DataKeys, record: repository.RecordRow
) -> PublicKey:
    """The key that signed the consent's form, the only one that may sign its withdrawal."""
    personal, _ = await open_record(conn, keys, record)
    if personal is None:
        raise ConsentNotActiveError("the consent is erased")
    try:
        return load_public_jwk(personal.signer_jwk)
    except KeysError:
        raise DataUnavailableError("the stored signer key does not load") from None


async def withdraw_record(
    conn: asyncpg.Connection,
    listers: WithdrawalListers,
    record: repository.RecordRow,
    *,
    by: str,
    withdrawal_sha256: str | None,
    now: datetime,
    reason: str | None = None,
) -> Withdrawn:
    """Mark the active record withdrawn ``by`` someone, and revoke its tokens."""
    if record.status != "active":
        raise ConsentNotActiveError(f"the consent is {record.status}")
    await repository.mark_withdrawn(
        conn, record.consent_id, at=now, by=by, withdrawal_sha256=withdrawal_sha256
    )
    revoked = await status.revoke_consent_tokens(conn, record.consent_id)
    payload: dict[str, Any] = {"by": by, "revoked_tokens": revoked}
    if withdrawal_sha256 is not None:
        payload["withdrawal_sha256"] = withdrawal_sha256
    if reason is not None:
        # The text may name people; the log keeps its hash, the response its text.
        payload["reason_sha256"] = text_sha256(reason)
    event = AuditRecord(
        action="consent.withdrawn",
        subject_type="consent",
        subject_id=record.consent_id,
        payload=payload,
    )
    return Withdrawn(
        consent_id=record.consent_id,
        withdrawn_at=now,
        withdrawn_by=by,
        revoked_tokens=revoked,
        affected=await affected(conn, listers, record.consent_id),
        events=(event,),
    )
