"""Rate limits in Redis (REGISTRY_REDIS_URL), falling back to PostgreSQL while it is away.

The buckets of ``registry.core.ratelimit`` (same rate, same burst, same 429), each a Redis
hash updated atomically by one Lua script (``_TAKE``, run with EVALSHA): it reads Redis's
clock (``TIME``), refills the bucket, takes a token when there is one, and sets the key to
expire when the bucket would be full again, so Redis holds only the callers of the last
refill period and nothing needs pruning. Keys are ``registry:ratelimit:<caller>``.

At start (``connect``) Redis must answer a PING, or the service does not start: the message
names REGISTRY_REDIS_URL. During operation a check that cannot reach Redis (refused, reset,
timed out after ``_TIMEOUT`` seconds, or any error Redis answers with) is made by the
PostgreSQL limiter instead, and so is every check for the next ``retry_interval`` seconds;
then Redis is tried again. One warning is logged when an outage starts (the error's type
name only), one line when Redis answers again. The two stores hold separate buckets: when
the limiter switches, a caller's bucket in the other store may be fuller than the one it
leaves, so a caller can get up to one burst more at a switch. It is never let through
unlimited: when neither store answers, the check raises DatabaseError (503).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from registry.core.settings import SettingsError

if TYPE_CHECKING:
    from registry.core.ratelimit import Bucket, RateLimiter

log = logging.getLogger(__name__)

PREFIX = "registry:ratelimit:"
# Seconds to connect to Redis and for one answer: a local round trip takes well under 1 ms,
# so past this Redis is as good as gone and the check goes to PostgreSQL.
_TIMEOUT = 0.5
_RETRY_INTERVAL = 5.0

# KEYS[1] the bucket, ARGV[1] rate (tokens a second), ARGV[2] burst. Returns {granted (0 or
# 1), tokens left as text} (Redis truncates a Lua number to an integer, a string it keeps).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local granted = 0
if tokens >= 1 then
  tokens = tokens - 1
  granted = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) / rate * 1000)))
return {granted, tostring(tokens)}
"""


def where(url: str) -> str:
    """``host:port`` of a Redis URL: for messages, without its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def client(url: str) -> aioredis.Redis:
    """A client that fails fast: no retries, ``_TIMEOUT`` to connect and per answer."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=_TIMEOUT,
        socket_timeout=_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


async def check_reachable(url: str) -> None:
    """PING Redis once; SettingsError naming REGISTRY_REDIS_URL when it does not answer."""
    probe = client(url)
    try:
        await probe.ping()
    except (RedisError, OSError) as exc:
        msg = f"REGISTRY_REDIS_URL: Redis at {where(url)} did not answer ({type(exc).__name__})"
        raise SettingsError(msg) from None
    finally:
        await probe.aclose()


class RedisRateLimiter:
    """Buckets in Redis; ``fallback`` (the PostgreSQL limiter) while Redis is unreachable."""

    def __init__(
        self,
        redis: aioredis.Redis,
        bucket: Bucket,
        fallback: RateLimiter,
        *,
        prefix: str = PREFIX,
        retry_interval: float = _RETRY_INTERVAL,
    ) -> None:
        self.redis = redis
        self.bucket = bucket
        self.fallback = fallback
        self.prefix = prefix
        self.retry_interval = retry_interval
        self._script = redis.register_script(_TAKE)
        self._down_until: float | None = None
        """While Redis is taken to be away: when to try it again (monotonic seconds)."""

    @classmethod
    async def connect(
        cls, url: str, bucket: Bucket, fallback: RateLimiter, **options: Any
    ) -> RedisRateLimiter:
        """A limiter on the Redis at ``url``, which must answer now (else SettingsError)."""
        await check_reachable(url)
        return cls(client(url), bucket, fallback, **options)

    @property
    def falling_back(self) -> bool:
        """Whether checks go to the fallback now (Redis failed within ``retry_interval``)."""
        return self._down_until is not None and time.monotonic() < self._down_until

    async def take(self, key: str, bucket: Bucket | None = None) -> None:
        shape = bucket or self.bucket
        if self.falling_back:
            await self.fallback.take(key, bucket)
            return
        try:
            granted, tokens = await self._script(
                keys=[self.prefix + key], args=[shape.rate, shape.burst]
            )
        except (RedisError, OSError) as exc:
            if self._down_until is None:
                log.warning(
                    "rate limits fall back to PostgreSQL: Redis is unreachable (%s)",
                    type(exc).__name__,
                )
            self._down_until = time.monotonic() + self.retry_interval
            await self.fallback.take(key, bucket)
            return
        if self._down_until is not None:
            self._down_until = None
            log.info("rate limits are back on Redis")
        if not granted:
            raise shape.refusal(float(tokens))

    async def prune(self) -> None:
        # Redis expires its own keys; the fallback's table may hold an outage's buckets.
        await self.fallback.prune()

    async def aclose(self) -> None:
        await self.redis.aclose()
        await self.fallback.aclose()
