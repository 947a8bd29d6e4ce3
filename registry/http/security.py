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

    The key is looked up in the database on every request (no cache), so a revoked or expired
    key is refused by every process from the revocation's commit on. Its ``last_used_at`` is
    only noted here and written later in a batch (``registry.api_keys.KeyUsage``).
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        services = app_services(connection)
        async with services.connection() as conn:
            found = await auth.authenticate_key(conn, connection.headers.get("authorization"))
        services.key_usage.note(found.key_id, found.last_used_at)
        client = found.client
        services.limiter.take(f"client:{client.client_id}")
        if roles:
            client.require(*roles)
        connection.state.client = client

    return guard


async def public(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for unauthenticated endpoints that do real work: limited per address."""
    app_services(connection).limiter.take(f"addr:{caller_address(connection)}")


def caller_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address, as the request-id middleware resolves it (registry.core.proxies)."""
    address = connection.scope.get("state", {}).get(CLIENT_ADDRESS)
    return address if isinstance(address, str) else UNKNOWN


BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
