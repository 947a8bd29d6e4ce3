"""Per-caller rate limits, shared by every service process through PostgreSQL.

Each caller (``client:<id>`` for an API client or a console user, ``addr:<address>`` for the
public endpoints) has a token bucket: it holds at most ``burst`` tokens, refills at ``rate``
tokens a second, and every request takes one; a request that finds less than one token is
refused with ``RateLimited`` (429, Retry-After: the seconds until a token is back). With
REGISTRY_RATE_LIMIT_PER_MINUTE = n, ``rate`` is n / 60 and ``burst`` n / 6 (at least 10): a
caller may send ten seconds' worth of its allowance at once, then n a minute.

Why a token bucket in one statement rather than a fixed-window counter: a counter per minute
lets a caller send twice its limit across a window's edge and needs a second rule for bursts;
the bucket keeps today's semantics exactly (the limit held by each process until issue 12),
now once for the whole service. Each check is a single ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` (``_TAKE``): PostgreSQL locks the caller's row, refills it from its
``updated_at`` on the database's clock (``clock_timestamp()``, read once per statement), takes
a token when there is one and says whether it did; concurrent checks for one caller queue on
that row lock, so N processes together allow the caller what one would. The connection is
taken from the service's pool for that statement alone (within the request's wait budget);
when the database is unreachable the check raises ``db.DatabaseError``, which the HTTP layer
answers with 503 ``database_unavailable``: a request is never let through unlimited. A
refused caller's next checks are refused by the process itself until its next token is due
(``PostgresRateLimiter``), so a caller over its limit adds no load on the database.

Rows whose bucket has refilled completely say nothing a missing row would not, so ``prune``
deletes them (the service runs it every ``PRUNE_INTERVAL`` seconds): the table holds the
callers of the last ten minutes, the refill time of the smallest bucket a client can have.

A client's bucket has its own shape: its tier's limit times its risk factor
(``registry.core.tiers``); ``take`` is given it, and the refusal says which limit applied.

``registry.core.ratelimit_redis`` keeps the same buckets in Redis when REGISTRY_REDIS_URL is
set, and falls back to this limiter while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from registry.core import db
from registry.core.errors import RateLimited

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 60.0
"""Seconds between deletions of full buckets (each process runs its own; they are cheap)."""
_REFUSED = "rate limit exceeded for this caller"
# A client's bucket can be as small as one request a minute (registry.core.tiers): a row is
# only full, and safe to delete, once that long a refill has passed.
_LONGEST_REFILL = 600.0
# Callers over their limit whose refusal a process remembers (the least recent go first).
_MAX_REFUSED = 10_000


@dataclass(frozen=True, kw_only=True)
class Bucket:
    """The shape of a caller's bucket: refill ``rate`` (tokens per second), ``burst``;
    ``limit`` names it in a refusal (which limit applied, and why)."""

    rate: float
    burst: float
    limit: str | None = None

    @classmethod
    def per_minute(cls, per_minute: int, *, limit: str | None = None) -> Bucket:
        return cls(rate=per_minute / 60.0, burst=float(max(per_minute // 6, 10)), limit=limit)

    @property
    def refill_seconds(self) -> float:
        """Seconds an empty bucket takes to fill: after that long untouched, it is full."""
        return self.burst / self.rate

    def refusal(self, tokens: float) -> RateLimited:
        """The error for a check that found ``tokens`` (< 1) in its bucket."""
        retry = max(1, math.ceil((1.0 - tokens) / self.rate))
        return RateLimited(_refused(self), retry_after=retry)


def _refused(bucket: Bucket) -> str:
    return _REFUSED if bucket.limit is None else f"{_REFUSED}: {bucket.limit}"


class RateLimiter(Protocol):
    """What the HTTP edge asks: take a token for ``key`` or raise RateLimited."""

    async def take(self, key: str, bucket: Bucket | None = None) -> None:
        """Take one token for ``key`` from a bucket of shape ``bucket`` (the limiter's own
        when None); RateLimited when there is none, DatabaseError when the limit cannot be
        checked."""

    async def prune(self) -> None:
        """Forget buckets that have refilled completely."""

    async def aclose(self) -> None:
        """Let go of what the limiter holds (not the service's pool)."""


# $1 key, $2 burst, $3 rate. The VALUES row is a full bucket less the token this check takes;
# on conflict the existing row is locked and refilled from its updated_at to this statement's
# clock_timestamp(), read once in VALUES (excluded.updated_at): the refilled level, capped at
# the burst, is the expression written out three times in SET. A check that waited for the
# lock while another took a token can find that one's updated_at later than its own clock:
# greatest() keeps time moving forward and refills nothing twice.
_TAKE = """
INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at, granted)
VALUES ($1, $2::float8 - 1, clock_timestamp(), true)
ON CONFLICT (key) DO UPDATE SET
    tokens = CASE
        WHEN least($2::float8, b.tokens + $3::float8
            * greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at)::float8)) >= 1
        THEN least($2::float8, b.tokens + $3::float8
            * greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at)::float8)) - 1
        ELSE least($2::float8, b.tokens + $3::float8
            * greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at)::float8))
    END,
    granted = least($2::float8, b.tokens + $3::float8
        * greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at)::float8)) >= 1,
    updated_at = greatest(b.updated_at, excluded.updated_at)
RETURNING granted, tokens
"""
_PRUNE = (
    "DELETE FROM rate_limit_buckets"
    " WHERE updated_at < clock_timestamp() - make_interval(secs => $1::float8)"
)


class PostgresRateLimiter:
    """Token buckets in the ``rate_limit_buckets`` table (migration 0011), one statement a
    check, on a connection of ``pool`` held for that statement only.

    A refused caller is refused again without asking the database until its next token is
    due: the statement said how far from one its bucket was, and the other processes can
    only take tokens, never add them, so the answer is the database's. A caller over its
    limit costs no connection and no statement.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        bucket: Bucket,
        *,
        acquire_timeout: float,
        max_refused: int = _MAX_REFUSED,
    ) -> None:
        self.pool = pool
        self.bucket = bucket
        self.acquire_timeout = acquire_timeout
        self.max_refused = max_refused
        self._empty_until: OrderedDict[str, float] = OrderedDict()
        """Callers refused lately: when their next token is due (monotonic seconds)."""

    async def take(self, key: str, bucket: Bucket | None = None) -> None:
        shape = bucket or self.bucket
        due = self._empty_until.get(key)
        if due is not None:
            left = due - time.monotonic()
            if left > 0:
                raise RateLimited(_refused(shape), retry_after=max(1, math.ceil(left)))
            del self._empty_until[key]
        async with db.acquire(self.pool, wait=self.acquire_timeout) as conn:
            row = await conn.fetchrow(_TAKE, key, shape.burst, shape.rate)
        if row is None or not row["granted"]:
            tokens = row["tokens"] if row is not None else 0.0
            self._empty_until[key] = time.monotonic() + (1.0 - tokens) / shape.rate
            self._empty_until.move_to_end(key)
            while len(self._empty_until) > self.max_refused:
                self._empty_until.popitem(last=False)
            raise shape.refusal(tokens)

    async def prune(self) -> None:
        async with db.acquire(self.pool, wait=self.acquire_timeout) as conn:
            await conn.execute(_PRUNE, max(self.bucket.refill_seconds, _LONGEST_REFILL))

    async def aclose(self) -> None:
        return


async def prune_forever(limiter: RateLimiter, interval: float = PRUNE_INTERVAL) -> None:
    """Run ``limiter.prune`` every ``interval`` seconds, outliving failed rounds."""
    while True:
        await asyncio.sleep(interval)
        try:
            await limiter.prune()
        except (db.DatabaseError, OSError) as exc:
            log.warning("rate-limit buckets not pruned: %s", type(exc).__name__)
