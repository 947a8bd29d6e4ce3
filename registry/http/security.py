"""Authentication guards, roles and per-client rate limits for the HTTP edge."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from registry.core import auth
from registry.core.proxies import UNKNOWN
from registry.core.ratelimit import Bucket
from registry.core.tiers import TierLimits, effective_limit, parse_tier_limits
from registry.http.deps import app_services
from registry.http.observability import CLIENT_ADDRESS

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from registry.core.auth import Client
    from registry.services import Services


def allow(*roles: auth.Role) -> Any:
    """Guard: a valid API key with one of ``roles`` (any role when none are named).

    The key is looked up in the database, or found in the process's cache of recent lookups
    (``registry.core.auth.KeyCache``) without taking a connection. A key revoked or expired is
    refused by every process at most REGISTRY_API_KEY_CACHE_SECONDS after the change commits
    (an expiry, and a revocation made through this process, at once). Its ``last_used_at`` is
    only noted here and written later in a batch (``registry.api_keys.KeyUsage``). The
    client's rate limit is then checked for the whole service (``registry.core.ratelimit``):
    one statement on a connection held for it alone, or one Redis call with
    REGISTRY_REDIS_URL.
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        services = app_services(connection)
        found = await auth.authenticate_cached(
            connection.headers.get("authorization"), services.key_cache, services.connection
        )
        services.key_usage.note(found.key_id, found.last_used_at)
        client = found.client
        await services.limiter.take(f"client:{client.client_id}", client_bucket(services, client))
        if roles:
            client.require(*roles)
        connection.state.client = client

    return guard


@functools.lru_cache(maxsize=4)
def _tier_limits(text: str | None, per_minute: int) -> TierLimits:
    # Parsed once per settings (validated at start, so this does not raise).
    return parse_tier_limits(text, per_minute=per_minute)


def client_bucket(services: Services, client: Client) -> Bucket:
    """The client's bucket: its tier's limit scaled by its risk factor (``registry.core.tiers``),
    named so that a refusal says which limit applied and why."""
    settings = services.settings
    base = _tier_limits(settings.tier_limits, settings.rate_limit_per_minute).of(client.tier)
    limit = effective_limit(base, client.risk_factor)
    why = f"{limit} requests a minute for this client (tier {client.tier}"
    if limit < base:
        why += f", reduced from {base} for {', '.join(client.risk_reasons) or 'risk'}"
    return Bucket.per_minute(limit, limit=why + ")")


async def public(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for unauthenticated endpoints that do real work: limited per address, for the
    whole service (``registry.core.ratelimit``)."""
    await app_services(connection).limiter.take(f"addr:{caller_address(connection)}")


def caller_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address, as the request-id middleware resolves it (registry.core.proxies)."""
    address = connection.scope.get("state", {}).get(CLIENT_ADDRESS)
    return address if isinstance(address, str) else UNKNOWN


BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
