"""Kill-switches' tables: suspensions a stop condition tripped, and features an admin paused.

Both are read on every gate request and every signing (``restrictions_for``: one statement on
two small tables, by their primary key or a partial unique index), so a trip or a pause is
in force on every process at once, with no cache to go stale.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from registry.gate.repository.stats import ClientSignals

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "Feature",
    "SubjectKind",
    "SuspensionRow",
    "SwitchRow",
    "active_subjects",
    "get_suspension",
    "insert_suspension",
    "lift_suspension",
    "list_suspensions",
    "pause_feature",
    "restrictions_for",
    "resume_feature",
    "subject_signals",
    "switches",
]

SubjectKind: TypeAlias = Literal["client", "model"]
Feature: TypeAlias = Literal["sign", "publish", "prompt_check"]
# The column each subject is counted by. Keys come from the policy's vocabulary, never from
# a request, so the name can go into the statement.
_COLUMN: dict[SubjectKind, str] = {"client": "client_id", "model": "model"}
_SUSPENSION_COLUMNS = (
    "suspension_id, subject_kind, subject, condition_id, policy_version, window_minutes,"
    " decisions, blocked, hash_matches, tripped_at, lifted_at, lifted_by"
)


class SuspensionRow(msgspec.Struct, kw_only=True, frozen=True):
    suspension_id: str
    subject_kind: SubjectKind
    subject: str
    condition_id: str
    policy_version: str
    window_minutes: int
    decisions: int
    blocked: int
    hash_matches: int
    tripped_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None


class SwitchRow(msgspec.Struct, kw_only=True, frozen=True):
    feature: Feature
    paused_at: datetime
    paused_by: str


async def subject_signals(
    conn: asyncpg.Connection, kind: SubjectKind, *, since: datetime
) -> dict[str, ClientSignals]:
    """Per client (or model), its decisions since ``since`` and since its last lift: a
    lifted suspension starts its subject's count afresh, so a lift is not undone by the
    very burst that caused it on the next round."""
    column = _COLUMN[kind]
    rows = await conn.fetch(
        f"SELECT d.{column} AS subject, count(*) AS decisions,"  # noqa: S608 - fixed names
        " count(*) FILTER (WHERE d.status = 'blocked') AS blocked,"
        " count(*) FILTER (WHERE d.reasons && ARRAY['hash_match_block', 'hash_match_review'])"
        " AS hash_matches, count(DISTINCT d.client_id) AS clients"
        " FROM moderation_decisions d LEFT JOIN ("
        "   SELECT subject, max(lifted_at) AS lifted FROM misuse_suspensions"
        "   WHERE subject_kind = $2 AND lifted_at IS NOT NULL GROUP BY subject"
        f" ) l ON l.subject = d.{column}"
        f" WHERE d.created_at >= $1 AND d.{column} IS NOT NULL"
        " AND (l.lifted IS NULL OR d.created_at > l.lifted)"
        f" GROUP BY d.{column}",
        since,
        kind,
    )
    return {
        r["subject"]: ClientSignals(
            decisions=r["decisions"],
            blocked=r["blocked"],
            hash_matches=r["hash_matches"],
            clients=r["clients"],
        )
        for r in rows
    }


async def active_subjects(conn: asyncpg.Connection) -> set[tuple[SubjectKind, str]]:
    rows = await conn.fetch(
        "SELECT subject_kind, subject FROM misuse_suspensions WHERE lifted_at IS NULL"
    )
    return {(r["subject_kind"], r["subject"]) for r in rows}


async def insert_suspension(
    conn: asyncpg.Connection,
    *,
    suspension_id: str,
    kind: SubjectKind,
    subject: str,
    condition_id: str,
    policy_version: str,
    window_minutes: int,
    signals: ClientSignals,
) -> SuspensionRow | None:
    """The new suspension, or None when the subject is already suspended (another process
    tripped it first)."""
    row = await conn.fetchrow(
        "INSERT INTO misuse_suspensions (suspension_id, subject_kind, subject, condition_id,"  # noqa: S608 - fixed text
        " policy_version, window_minutes, decisions, blocked, hash_matches)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (subject_kind, subject) WHERE lifted_at IS NULL DO NOTHING"
        f" RETURNING {_SUSPENSION_COLUMNS}",
        suspension_id,
        kind,
        subject,
        condition_id,
        policy_version,
        window_minutes,
        signals.decisions,
        signals.blocked,
        signals.hash_matches,
    )
    return SuspensionRow(**dict(row)) if row is not None else None


async def get_suspension(conn: asyncpg.Connection, suspension_id: str) -> SuspensionRow | None:
    row = await conn.fetchrow(
        f"SELECT {_SUSPENSION_COLUMNS} FROM misuse_suspensions"  # noqa: S608 - fixed text
        " WHERE suspension_id = $1",
        suspension_id,
    )
    return SuspensionRow(**dict(row)) if row is not None else None


async def lift_suspension(
    conn: asyncpg.Connection, suspension_id: str, *, by: str, reason_sha256: str | None
) -> SuspensionRow | None:
    """The lifted suspension; None when it is unknown or was lifted already."""
    row = await conn.fetchrow(
        "UPDATE misuse_suspensions SET lifted_at = now(), lifted_by = $2,"  # noqa: S608 - fixed text
        " lift_reason_sha256 = $3 WHERE suspension_id = $1 AND lifted_at IS NULL"
        f" RETURNING {_SUSPENSION_COLUMNS}",
        suspension_id,
        by,
        reason_sha256,
    )
    return SuspensionRow(**dict(row)) if row is not None else None


async def list_suspensions(
    conn: asyncpg.Connection, *, active: bool | None, limit: int
) -> list[SuspensionRow]:
    """Newest first; ``active`` True for those in force, False for lifted ones."""
    rows = await conn.fetch(
        f"SELECT {_SUSPENSION_COLUMNS} FROM misuse_suspensions"  # noqa: S608 - fixed text
        " WHERE $1::boolean IS NULL OR (lifted_at IS NULL) = $1"
        " ORDER BY tripped_at DESC, suspension_id LIMIT $2",
        active,
        limit,
    )
    return [SuspensionRow(**dict(r)) for r in rows]


async def restrictions_for(
    conn: asyncpg.Connection,
    *,
    clients: Sequence[str],
    model: str | None,
    feature: Feature,
) -> list[tuple[Literal["suspension", "switch"], str, str | None]]:
    """The stops in force for a request: (``suspension``, ``client:ID`` / ``model:NAME``,
    suspension id) for each suspended subject it involves, (``switch``, feature, None) when
    ``feature`` is paused."""
    rows = await conn.fetch(
        "SELECT 'suspension' AS kind, subject_kind || ':' || subject AS subject,"
        " suspension_id AS ref FROM misuse_suspensions WHERE lifted_at IS NULL AND ("
        " (subject_kind = 'client' AND subject = ANY ($1::text[]))"
        " OR (subject_kind = 'model' AND subject = $2))"
        " UNION ALL SELECT 'switch', feature, NULL FROM feature_switches WHERE feature = $3"
        " ORDER BY 1, 2",
        list(clients),
        model,
        feature,
    )
    return [(r["kind"], r["subject"], r["ref"]) for r in rows]


async def switches(conn: asyncpg.Connection) -> list[SwitchRow]:
    rows = await conn.fetch(
        "SELECT feature, paused_at, paused_by FROM feature_switches ORDER BY feature"
    )
    return [SwitchRow(**dict(r)) for r in rows]


async def pause_feature(
    conn: asyncpg.Connection, feature: Feature, *, by: str, reason_sha256: str | None
) -> SwitchRow | None:
    """The new pause, or None when the feature was already paused (which is kept as it is)."""
    row = await conn.fetchrow(
        "INSERT INTO feature_switches (feature, paused_by, reason_sha256) VALUES ($1, $2, $3)"
        " ON CONFLICT (feature) DO NOTHING RETURNING feature, paused_at, paused_by",
        feature,
        by,
        reason_sha256,
    )
    return SwitchRow(**dict(row)) if row is not None else None


async def resume_feature(conn: asyncpg.Connection, feature: Feature) -> bool:
    """Whether the feature was paused."""
    deleted = await conn.fetchval(
        "DELETE FROM feature_switches WHERE feature = $1 RETURNING true", feature
    )
    return bool(deleted)
