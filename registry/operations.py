"""State changes reached from more than one entry point (HTTP, CLI, start-up).

Each runs in the caller's unit of work (``registry.core.uow``) and records its audit event
there, so the change and its record commit together whichever door it came through.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from registry import api_keys, review
from registry.core import auth, db, tiers
from registry.core.tiers import DEFAULT_TIER, RiskSignals, Tier
from registry.gate import misuse
from registry.gate import repository as gate_repository
from registry.review import repository as review_repository

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    import asyncpg

    from keys import KeyRing, Rotation
    from moderation import Policy
    from registry.core.audit import JwsSigner
    from registry.core.uow import UnitOfWork
    from registry.gate.repository.misuse import SuspensionRow
    from registry.gate.vault import DecisionVault
    from registry.web import ReviewImageStore


async def create_client(
    uow: UnitOfWork,
    *,
    name: str,
    roles: Iterable[str],
    tenant: str,
    api_key: str | None = None,
    expires_at: datetime | None = None,
    tier: Tier = DEFAULT_TIER,
) -> auth.NewClient:
    """Create a client with its first key (expiring at ``expires_at``, if given)."""
    new = await auth.create_client(
        uow.conn,
        name=name,
        roles=roles,
        tenant=tenant,
        api_key=api_key,
        expires_at=api_keys.check_expiry(expires_at),
        tier=tier,
    )
    uow.record(
        "client.created",
        subject_type="api_client",
        subject_id=new.client.client_id,
        payload={
            "tenant": new.client.tenant,
            "roles": sorted(r.value for r in new.client.roles),
            "tier": new.client.tier,
            **api_keys.key_payload(new.key.key_id, new.key.expires_at),
        },
    )
    return new


async def ensure_bootstrap_admin(uow: UnitOfWork, api_key: str) -> auth.NewClient | None:
    """Make sure an admin client with this key exists; return it when it was just created.

    Run it in a unit of work acting as "system" in ``auth.SYSTEM_TENANT``.
    """
    auth.check_key_shape(api_key)
    if await auth.key_exists(uow.conn, api_key):
        return None
    return await create_client(
        uow,
        name="bootstrap-admin",
        roles=[auth.Role.ADMIN],
        tenant=auth.SYSTEM_TENANT,
        api_key=api_key,
    )


async def rotate_keys(uow: UnitOfWork, ring: KeyRing) -> Rotation:
    """Rotate the token-signing key; the caller refreshes the ring after commit."""
    rotation = await ring.rotate(uow.conn)
    uow.record(
        "keys.rotated",
        subject_type="signing_key",
        subject_id=rotation.activated_kid,
        payload={
            "activated_kid": rotation.activated_kid,
            "retiring_kid": rotation.retiring_kid,
            "next_kid": rotation.next_kid,
        },
    )
    return rotation


def derived_eraser(
    vault: DecisionVault, images: ReviewImageStore
) -> Callable[[asyncpg.Connection, str, datetime], Awaitable[int]]:
    """What the consent domain calls, in an erasure's transaction, to erase what the rooms
    above it derived from the consent: the gate's decisions made with its tokens (their
    sealed request and evidence, their hashes), those decisions' review images, and the
    reviewers' notes and appeal statements about them (their SHA-256s stay)."""

    async def erase(conn: asyncpg.Connection, consent_id: str, at: datetime) -> int:
        decisions = await vault.erase_for(conn, consent_id, at)
        await images.forget_decisions(conn, decisions)
        await review_repository.delete_texts_of(conn, decisions)
        return len(decisions)

    return erase


async def refresh_client_risk(uow: UnitOfWork) -> dict[str, tiers.Risk]:
    """Recompute every enabled client's risk factor from what the gate saw of it over the
    last ``tiers.WINDOW_MINUTES`` (``registry.core.tiers.assess``); store and audit the ones
    that changed, and return those. One process at a time: a round that finds another under
    way returns at once with nothing."""
    conn = uow.conn
    if not await auth.try_lock_risk_round(conn):
        return {}
    since = await db.now(conn) - timedelta(minutes=tiers.WINDOW_MINUTES)
    seen = await gate_repository.client_signals(conn, since=since)
    changed: dict[str, tiers.Risk] = {}
    for subject in await auth.risk_subjects(conn):
        counts = seen.get(subject.client_id)
        risk = tiers.assess(
            subject.tier,
            RiskSignals(
                age_days=subject.age_days,
                decisions=counts.decisions if counts else 0,
                blocked=counts.blocked if counts else 0,
                hash_matches=counts.hash_matches if counts else 0,
            ),
        )
        if (risk.factor, risk.reasons) == (subject.risk_factor, subject.risk_reasons):
            continue
        await auth.set_risk(conn, subject.client_id, factor=risk.factor, reasons=risk.reasons)
        uow.record(
            "client.risk_changed",
            subject_type="api_client",
            subject_id=subject.client_id,
            payload={
                "risk_factor": risk.factor,
                "risk_reasons": list(risk.reasons),
                "previous_risk_factor": subject.risk_factor,
            },
        )
        changed[subject.client_id] = risk
    return changed


async def check_stop_conditions(
    uow: UnitOfWork, policy: Policy, *, signer: JwsSigner, issuer: str
) -> list[SuspensionRow]:
    """Suspend every client and model that reached one of the policy's stop conditions
    (``registry.gate.misuse.trip``) and queue the operator's signed notice of each for the
    admin clients' webhooks, all in ``uow``: a suspension is never without its notice."""
    tripped = await misuse.trip(uow, policy)
    for suspension in tripped:
        for delivery_id in await review.misuse_notices(
            uow.conn, suspension, signer=signer, issuer=issuer
        ):
            uow.record(
                "misuse.notice_created",
                subject_type="takedown_delivery",
                subject_id=delivery_id,
                payload={"suspension_id": suspension.suspension_id},
            )
    return tripped
