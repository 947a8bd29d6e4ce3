"""The audit log over HTTP: the public checkpoint and the admin event listing."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import Parameter

from registry.core import audit
from registry.core.auth import Client, Role
from registry.core.errors import NotFound
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow

# Event numbers are PostgreSQL bigints; a larger ``after`` is refused, not sent to the server.
MAX_SEQ = 2**63 - 1


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]  # noqa: RUF012 - Litestar reads class attributes

    @get(
        "/checkpoint",
        summary="Latest signed checkpoint of the audit log (public)",
        description=(
            "`checkpoint` is a compact JWS (`typ: audit-checkpoint+jwt`) over "
            "`{iss, tree_size, head, iat}`, verifiable with the JWKS. Keep one: a later log "
            "that does not extend it has been rewritten."
        ),
        cache=False,
    )
    async def checkpoint(self, services: AppServices) -> audit.Checkpoint:
        async with services.connection() as conn:
            latest = await audit.latest_checkpoint(conn)
        if latest is None:
            msg = "no checkpoint has been signed yet"
            raise NotFound(msg)
        return latest

    @post(
        "/checkpoint",
        summary="Sign a checkpoint of the current head now",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
        status_code=200,
    )
    async def sign_checkpoint(
        self, services: AppServices, caller: NamedDependency[Client]
    ) -> Response[Any]:
        async with services.unit_of_work(caller) as uow:
            made = await audit.make_checkpoint(
                uow.conn, services.keyring, issuer=services.settings.public_issuer
            )
            latest = made or await audit.latest_checkpoint(uow.conn)
        if latest is None:
            msg = "the audit log is empty; there is nothing to checkpoint"
            raise NotFound(msg)
        return Response(latest, status_code=201 if made else 200)

    @get(
        "/events",
        summary="List audit events (admin)",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
    )
    async def events(
        self,
        services: AppServices,
        after: int = Parameter(
            default=0, ge=0, le=MAX_SEQ, description="Return events after this seq"
        ),
        limit: int = Parameter(default=100, ge=1, le=1000),
        subject_type: str | None = Parameter(default=None, max_length=100),
        subject_id: str | None = Parameter(default=None, max_length=200),
    ) -> dict[str, Any]:
        async with services.connection() as conn:
            events = await audit.list_events(
                conn, after=after, limit=limit, subject_type=subject_type, subject_id=subject_id
            )
        return {"events": events, "next_after": events[-1].seq if events else after}
