"""One wait for pooled connections per request (an ASGI middleware).

A request may acquire several times (the gate: its replay check, the hash lists, each
consent, the decision's transaction). REGISTRY_DB_ACQUIRE_TIMEOUT bounds them together, so a
request that meets an exhausted pool answers ``503 database_unavailable`` about that long
after it first waited, not once per acquire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.enums import ScopeType

from registry.core import db

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send


def wait_budget_middleware(app: ASGIApp, *, seconds: float) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        with db.wait_budget(seconds):
            await app(scope, receive, send)

    return middleware
