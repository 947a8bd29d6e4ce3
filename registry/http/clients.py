"""API client administration."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post

from registry import operations
from registry.auth import Role
from registry.http.body import read_json
from registry.http.security import BEARER, allow, current_client, services_of


class CreateClient(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: str
    roles: list[str]
    tenant: str


class CreatedClient(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    name: str
    tenant: str
    roles: list[str]
    api_key: str
    """Shown once; only its hash is stored."""


class ClientsController(Controller):
    path = "/v1/admin/clients"
    tags = ["admin"]  # noqa: RUF012 - Litestar reads class attributes

    @post(
        "/",
        summary="Create an API client and return its key (shown once)",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
        opt={"body": CreateClient},
    )
    async def create(self, request: Request[Any, Any, Any]) -> CreatedClient:
        services = services_of(request)
        admin = current_client(request)
        body = await read_json(
            request,
            CreateClient,
            max_bytes=services.settings.max_json_bytes,
            max_depth=services.settings.max_json_depth,
        )
        async with services.transaction() as conn:
            new = await operations.create_client(
                conn,
                actor=admin.client_id,
                actor_tenant=admin.tenant,
                name=body.name,
                roles=body.roles,
                tenant=body.tenant,
            )
        return CreatedClient(
            client_id=new.client.client_id,
            name=new.client.name,
            tenant=new.client.tenant,
            roles=sorted(r.value for r in new.client.roles),
            api_key=new.api_key,
        )
