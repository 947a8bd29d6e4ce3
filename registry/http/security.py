"""Authentication guards, roles and per-client rate limits for the HTTP edge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.core import auth
from registry.core.proxies import UNKNOWN
from registry.http.deps import app_services
from registry.http.observability import CLIENT_ADDRESS

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler


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
        await services.limiter.take(f"client:{client.client_id}")
        if roles:
            client.require(*roles)
        connection.state.client = client

    return guard


async def public(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for unauthenticated endpoints that do real work: limited per address, for the
    whole service (``registry.core.ratelimit``)."""
    await app_services(connection).limiter.take(f"addr:{caller_address(connection)}")


def caller_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address, as the request-id middleware resolves it (registry.core.proxies)."""
    address = connection.scope.get("state", {}).get(CLIENT_ADDRESS)
    return address if isinstance(address, str) else UNKNOWN


BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
