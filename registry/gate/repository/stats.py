"""Counts over the gate's decisions and tickets, for the moderation KPIs
(``registry.review.stats``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from datetime import datetime

    import asyncpg

__all__ = [
    "ClassifierCalls",
    "ClientRepeats",
    "ClientSignals",
    "Spread",
    "UserRepeats",
    "VersionDecisions",
    "classifier_calls",
    "classifier_errors",
    "client_repeats",
    "client_signals",
    "current_status_counts",
    "open_ticket_counts",
    "reason_counts",
    "review_latency",
    "status_counts",
    "user_repeats",
    "version_decisions",
]

# One row per computed classifier result stored in a decision's evidence.
_CALLS = """
    SELECT c->>'classifier' AS classifier, c->>'error' AS error,
           (c->>'latency_ms')::float8 AS latency_ms,
           coalesce(jsonb_array_length(c->'invalid'), 0) AS invalid
    FROM moderation_decisions d, jsonb_array_elements(d.evidence->'classifiers') AS c
    WHERE c->>'origin' = 'computed'
"""


class Spread(msgspec.Struct, kw_only=True, frozen=True):
    """How many values, and their median and 95th percentile (None without values)."""

    count: int
    p50: float | None
    p95: float | None


class ClassifierCalls(msgspec.Struct, kw_only=True, frozen=True):
    classifier: str
    invalid: int
    """Scores the classifier returned that were refused."""
    latency_ms: Spread


def _spread(row: asyncpg.Record) -> Spread:
    return Spread(count=row["n"], p50=row["p50"], p95=row["p95"])


async def status_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Decisions by the gate's own outcome."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM moderation_decisions GROUP BY status ORDER BY 1"
    )
    return {r["status"]: r["n"] for r in rows}


async def current_status_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Decisions by their outcome after reviews and appeals."""
    rows = await conn.fetch(
        "SELECT current_status, count(*) AS n FROM moderation_decisions"
        " GROUP BY current_status ORDER BY 1"
    )
    return {r["current_status"]: r["n"] for r in rows}


async def reason_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Decisions carrying each reason code."""
    rows = await conn.fetch(
        "SELECT reason, count(*) AS n FROM moderation_decisions, unnest(reasons) AS reason"
        " GROUP BY reason ORDER BY 1"
    )
    return {r["reason"]: r["n"] for r in rows}


async def review_latency(conn: asyncpg.Connection) -> Spread:
    """Seconds from a review ticket's opening to its decision, over decided review tickets."""
    # Aggregates without GROUP BY always return exactly one row.
    [row] = await conn.fetch(
        "SELECT count(*) AS n,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))"
        " AS p50,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))"
        " AS p95 FROM review_tickets WHERE kind = 'review' AND status = 'closed'"
    )
    return _spread(row)


async def open_ticket_counts(conn: asyncpg.Connection) -> tuple[int, int]:
    """Tickets not yet decided, and how many of those are past their deadline."""
    [row] = await conn.fetch(
        "SELECT count(*) AS open, count(*) FILTER (WHERE deadline < now()) AS late"
        " FROM review_tickets WHERE status <> 'closed'"
    )
    return row["open"], row["late"]


async def classifier_calls(conn: asyncpg.Connection) -> list[ClassifierCalls]:
    """Each classifier's computed results: how many, refused scores, latency; by name."""
    rows = await conn.fetch(
        f"SELECT classifier, count(*) AS n, sum(invalid) AS invalid,"  # noqa: S608 - constant
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95"
        f" FROM ({_CALLS}) calls GROUP BY classifier ORDER BY classifier"
    )
    return [
        ClassifierCalls(
            classifier=r["classifier"], invalid=int(r["invalid"] or 0), latency_ms=_spread(r)
        )
        for r in rows
    ]


async def classifier_errors(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Failed classifier calls by classifier and error code."""
    errors: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(
        f"SELECT classifier, error, count(*) AS n FROM ({_CALLS}) calls"  # noqa: S608 - constant
        " WHERE error IS NOT NULL GROUP BY classifier, error ORDER BY 1, 2"
    ):
        errors.setdefault(r["classifier"], {})[r["error"]] = r["n"]
    return errors


class UserRepeats(msgspec.Struct, kw_only=True, frozen=True):
    """End users (by blind index) with blocked decisions in a window."""

    blocked_users: int
    """End users with at least one blocked decision."""
    repeat_users: int
    """End users with two or more."""
    repeat_blocks: int
    """Blocked decisions of repeat users beyond each one's first."""


class ClientRepeats(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    decisions: int
    blocked: int
    repeat_users: int
    """This client's end users with two or more blocked decisions in the window."""


class VersionDecisions(msgspec.Struct, kw_only=True, frozen=True):
    policy_version: str
    policy_label: str
    decisions: int
    allowed_by_gate: int
    """Publish decisions the gate itself allowed (what a later report can prove wrong)."""


async def user_repeats(conn: asyncpg.Connection, *, since: datetime) -> UserRepeats:
    """Repeat blocked decisions per end user since ``since`` (decisions without a user_id,
    and those from before migration 0019, have no user and are not counted)."""
    [row] = await conn.fetch(
        "SELECT count(*) AS users, count(*) FILTER (WHERE n > 1) AS repeat_users,"
        " coalesce(sum(n - 1) FILTER (WHERE n > 1), 0) AS repeat_blocks"
        " FROM (SELECT count(*) AS n FROM moderation_decisions WHERE status = 'blocked'"
        " AND created_at >= $1 AND user_ref IS NOT NULL GROUP BY tenant, user_ref) u",
        since,
    )
    return UserRepeats(
        blocked_users=row["users"],
        repeat_users=row["repeat_users"],
        repeat_blocks=int(row["repeat_blocks"]),
    )


async def client_repeats(
    conn: asyncpg.Connection, *, since: datetime, limit: int
) -> list[ClientRepeats]:
    """The ``limit`` clients with the most blocked decisions since ``since``."""
    rows = await conn.fetch(
        "WITH recent AS (SELECT client_id, status, user_ref FROM moderation_decisions"
        " WHERE created_at >= $1),"
        " repeaters AS (SELECT client_id, count(*) AS n FROM (SELECT client_id, user_ref"
        " FROM recent WHERE status = 'blocked' AND user_ref IS NOT NULL"
        " GROUP BY client_id, user_ref HAVING count(*) > 1) r GROUP BY client_id)"
        " SELECT c.client_id, c.decisions, c.blocked, coalesce(r.n, 0) AS repeat_users"
        " FROM (SELECT client_id, count(*) AS decisions,"
        " count(*) FILTER (WHERE status = 'blocked') AS blocked FROM recent"
        " GROUP BY client_id) c LEFT JOIN repeaters r USING (client_id)"
        " WHERE c.blocked > 0 ORDER BY c.blocked DESC, c.client_id LIMIT $2",
        since,
        limit,
    )
    return [ClientRepeats(**dict(r)) for r in rows]


async def version_decisions(conn: asyncpg.Connection, *, since: datetime) -> list[VersionDecisions]:
    """Decisions per policy version since ``since``, and how many the gate allowed."""
    rows = await conn.fetch(
        "SELECT policy_version, max(policy_label) AS policy_label, count(*) AS decisions,"
        " count(*) FILTER (WHERE status = 'allowed' AND stage = 'publish') AS allowed_by_gate"
        " FROM moderation_decisions WHERE created_at >= $1"
        " GROUP BY policy_version ORDER BY policy_version",
        since,
    )
    return [VersionDecisions(**dict(r)) for r in rows]


class ClientSignals(msgspec.Struct, kw_only=True, frozen=True):
    """What the gate decided for one client over a window (its risk signals)."""

    decisions: int
    blocked: int
    hash_matches: int
    """Decisions held back by a hash-list match (a consented match does not count)."""
    clients: int = 1
    """How many clients the decisions came from (1 for a client's own)."""


async def client_signals(conn: asyncpg.Connection, *, since: datetime) -> dict[str, ClientSignals]:
    """Per client, its decisions since ``since``: how many, blocked, matching a hash list."""
    rows = await conn.fetch(
        "SELECT client_id, count(*) AS decisions,"
        " count(*) FILTER (WHERE status = 'blocked') AS blocked,"
        " count(*) FILTER (WHERE reasons && ARRAY['hash_match_block', 'hash_match_review'])"
        " AS hash_matches FROM moderation_decisions WHERE created_at >= $1 GROUP BY client_id",
        since,
    )
    return {
        r["client_id"]: ClientSignals(
            decisions=r["decisions"], blocked=r["blocked"], hash_matches=r["hash_matches"]
        )
        for r in rows
    }
