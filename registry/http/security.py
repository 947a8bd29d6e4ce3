"""Authentication guards, roles and per-client rate limits for the HTTP edge."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from registry import auth
from registry.errors import RateLimited

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from registry.services import Services


class RateLimiter:
    """Token buckets per caller, in this process (each service process limits on its own)."""

    def __init__(self, per_minute: int, *, max_callers: int = 50_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(per_minute // 6, 10))
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, caller: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.pop(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            msg = "rate limit exceeded for this caller"
            raise RateLimited(msg, retry_after=retry)
        self._buckets[caller] = (tokens - 1.0, now)
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services


def allow(*roles: auth.Role) -> Any:
    """Guard: a valid API key with one of ``roles`` (any role when none are named)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        services = services_of(connection)
        async with services.connection() as conn:
            client = await auth.authenticate(conn, connection.headers.get("authorization"))
        services.limiter.take(f"client:{client.client_id}")
        if roles:
            client.require(*roles)
        connection.state.client = client

    return guard


async def public(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for unauthenticated endpoints that do real work: limited per address."""
    address = connection.client.host if connection.client else "unknown"
    services_of(connection).limiter.take(f"addr:{address}")


def current_client(connection: ASGIConnection[Any, Any, Any, Any]) -> auth.Client:
    client: auth.Client = connection.state.client
    return client


BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
