"""Kill-switches: stop conditions that suspend a client or a model, and features an admin
pauses for everyone.

A stop condition of the policy (``[stop_conditions]``, ``moderation.policy.StopCondition``)
is checked every ``REGISTRY_RISK_INTERVAL`` seconds against the gate's recent decisions
(:func:`trip`). A subject that reaches it is suspended: from then on every gate decision
that involves it (as the calling client, the generator of the image, or the model the
request names) carries ``suspended_misuse``, a reason no policy can make milder than
``review``, and it signs nothing (:class:`SuspendedMisuse`). Only an admin lifts it
(:func:`lift`); the subject's count then starts afresh. A paused feature (``sign``,
``publish``, ``prompt_check``) is the manual switch: gate decisions get ``feature_paused``
(review), signing answers 503 (:class:`FeaturePaused`).

Every trip, lift, pause and resume is audited. Reasons an admin gives are audited as their
SHA-256 only: they may name people, and the audit log is append-only.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, get_args

import msgspec

from moderation import Restriction
from registry.core import db
from registry.gate.errors import (
    FeaturePaused,
    FeatureUnknown,
    SuspendedMisuse,
    SuspensionLifted,
    SuspensionNotFound,
)
from registry.gate.repository import misuse as repository
from registry.gate.repository.misuse import Feature, SubjectKind, SuspensionRow, SwitchRow

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

    from moderation import Policy
    from moderation.policy import StopCondition
    from registry.core.uow import UnitOfWork
    from registry.gate.repository import ClientSignals

__all__ = [
    "FEATURES",
    "Feature",
    "FeaturePaused",
    "FeatureUnknown",
    "SubjectKind",
    "SuspendedMisuse",
    "SuspensionLifted",
    "SuspensionNotFound",
    "SuspensionRow",
    "SwitchRow",
    "SwitchesView",
    "check_feature",
    "check_signing",
    "lift",
    "list_suspensions",
    "pause",
    "restrictions",
    "resume",
    "switches",
    "trip",
    "tripped",
]

# The one list, from the type the repository and the migration's CHECK share.
FEATURES: tuple[Feature, ...] = get_args(Feature)
_MAX_LISTED = 500


def check_feature(name: str) -> Feature:
    for feature in FEATURES:
        if name == feature:
            return feature
    raise FeatureUnknown(f"no feature {name!r}; the features are {', '.join(FEATURES)}")


def _reason_sha256(reason: str | None) -> str | None:
    return hashlib.sha256(reason.encode("utf-8")).hexdigest() if reason else None


# Reading, on every request.


async def restrictions(
    conn: asyncpg.Connection, *, clients: Sequence[str], model: str | None, feature: Feature
) -> tuple[Restriction, ...]:
    """The stops in force for a request by ``clients`` (the caller, and the generator it
    names) with ``model``, for ``feature``: evidence for ``moderation.decide``."""
    rows = await repository.restrictions_for(
        conn, clients=[c for c in clients if c], model=model, feature=feature
    )
    return tuple(Restriction(kind=kind, subject=subject, ref=ref) for kind, subject, ref in rows)


async def check_signing(conn: asyncpg.Connection, *, client_id: str, model: str) -> None:
    """Refuse to sign for a suspended client or model, or while signing is paused."""
    for restriction in await restrictions(conn, clients=[client_id], model=model, feature="sign"):
        if restriction.kind == "switch":
            raise FeaturePaused("signing is paused by the operator; nothing was signed")
        raise SuspendedMisuse(
            f"{restriction.subject} is suspended ({restriction.ref}) after a stop condition "
            "tripped; nothing is signed until an admin lifts it",
            suspension_id=restriction.ref,
        )


# Tripping, from the background round.


def tripped(condition: StopCondition, signals: ClientSignals) -> bool:
    """Whether ``signals`` over the condition's window reach it."""
    if condition.subject == "model" and signals.clients < condition.min_clients:
        return False
    if condition.signal == "hash_matches":
        return signals.hash_matches >= condition.threshold
    if signals.decisions < condition.min_decisions:
        return False
    return signals.blocked / signals.decisions >= condition.threshold


async def trip(uow: UnitOfWork, policy: Policy) -> list[SuspensionRow]:
    """Check every stop condition of ``policy``; suspend (and audit) each subject that
    reaches one and is not suspended yet. Returns the new suspensions."""
    conn = uow.conn
    now = await db.now(conn)
    active = await repository.active_subjects(conn)
    new: list[SuspensionRow] = []
    for condition in policy.stop_conditions:
        since = now - timedelta(minutes=condition.window_minutes)
        seen = await repository.subject_signals(conn, condition.subject, since=since)
        for subject, signals in sorted(seen.items()):
            if (condition.subject, subject) in active or not tripped(condition, signals):
                continue
            row = await repository.insert_suspension(
                conn,
                suspension_id="sus_" + secrets.token_urlsafe(16),
                kind=condition.subject,
                subject=subject,
                condition_id=condition.id,
                policy_version=policy.version,
                window_minutes=condition.window_minutes,
                signals=signals,
            )
            if row is None:
                continue
            active.add((row.subject_kind, row.subject))
            uow.record(
                "misuse.suspended",
                subject_type="misuse_suspension",
                subject_id=row.suspension_id,
                payload={
                    "subject_kind": row.subject_kind,
                    "subject": row.subject,
                    "condition_id": row.condition_id,
                    "policy_version": row.policy_version,
                    "window_minutes": row.window_minutes,
                    "decisions": row.decisions,
                    "blocked": row.blocked,
                    "hash_matches": row.hash_matches,
                },
            )
            new.append(row)
    return new


# Administration.


async def list_suspensions(
    conn: asyncpg.Connection, *, active: bool | None = None, limit: int = 100
) -> list[SuspensionRow]:
    return await repository.list_suspensions(
        conn, active=active, limit=max(1, min(limit, _MAX_LISTED))
    )


async def lift(uow: UnitOfWork, suspension_id: str, *, reason: str) -> SuspensionRow:
    """Lift a suspension in force; the subject's count starts afresh from now."""
    reason_sha256 = _reason_sha256(reason)
    lifted = await repository.lift_suspension(
        uow.conn, suspension_id, by=uow.actor, reason_sha256=reason_sha256
    )
    if lifted is None:
        # Tell the two apart only now: the update above is the one that decides.
        row = await repository.get_suspension(uow.conn, suspension_id)
        if row is None or row.lifted_at is None:
            raise SuspensionNotFound(f"no suspension {suspension_id!r}")
        raise SuspensionLifted(
            f"suspension {suspension_id!r} was lifted at {row.lifted_at.isoformat()}"
        )
    uow.record(
        "misuse.lifted",
        subject_type="misuse_suspension",
        subject_id=suspension_id,
        payload={
            "subject_kind": lifted.subject_kind,
            "subject": lifted.subject,
            "reason_sha256": reason_sha256,
        },
    )
    return lifted


class SwitchesView(msgspec.Struct, kw_only=True, frozen=True):
    paused: list[SwitchRow]
    """The paused features; a feature not listed runs."""


async def switches(conn: asyncpg.Connection) -> SwitchesView:
    return SwitchesView(paused=await repository.switches(conn))


async def pause(uow: UnitOfWork, feature: Feature, *, reason: str) -> SwitchesView:
    """Pause ``feature`` for everyone (pausing a paused feature changes nothing)."""
    reason_sha256 = _reason_sha256(reason)
    row = await repository.pause_feature(
        uow.conn, feature, by=uow.actor, reason_sha256=reason_sha256
    )
    if row is not None:
        uow.record(
            "switch.paused",
            subject_type="feature_switch",
            subject_id=feature,
            payload={"reason_sha256": reason_sha256},
        )
    return await switches(uow.conn)


async def resume(uow: UnitOfWork, feature: Feature) -> SwitchesView:
    """Resume ``feature`` (resuming a running feature changes nothing)."""
    if await repository.resume_feature(uow.conn, feature):
        uow.record("switch.resumed", subject_type="feature_switch", subject_id=feature)
    return await switches(uow.conn)
