"""Request ids, the caller's address and access logs (an ASGI middleware), Prometheus metrics."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from registry.core.logs import request_id
from registry.core.proxies import NO_PROXIES, TrustedProxies, client_address

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("registry.access")
_INBOUND_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
CLIENT_ADDRESS = "client_address"
"""The key in the ASGI scope's state under which the caller's address is kept."""

prometheus = PrometheusConfig(app_name="registry", prefix="registry", group_path=True)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def request_id_middleware(app: ASGIApp, *, trusted_proxies: TrustedProxies = NO_PROXIES) -> ASGIApp:
    """Give each request an id, resolve its caller's address once, and log it when done.

    The address (``registry.core.proxies``, behind ``trusted_proxies``) goes into the scope's
    state for the per-address rate limit (``registry.http.security``) and into the log line.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        peer = scope.get("client")
        address = client_address(peer[0] if peer else None, scope["headers"], trusted_proxies)
        scope.setdefault("state", {})[CLIENT_ADDRESS] = address
        inbound = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = inbound if _INBOUND_ID.match(inbound) else secrets.token_hex(8)
        token = request_id.set(rid)
        started = time.perf_counter()
        status: list[int] = [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            client = scope.get("state", {}).get("client")
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope["path"],
                    "status": status[0],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client_id": getattr(client, "client_id", None),
                    "client_address": address,
                },
            )
            request_id.reset(token)

    return middleware


__all__: list[Any] = ["MetricsController", "prometheus", "request_id_middleware"]
