"""API client administration: create, list, revoke, and add or revoke keys (admins).

Secrets appear only in the answer that makes them (creating a client, adding a key); every
listing shows key ids and dates only. Every change is audited in its own transaction
(``registry.api_keys``, ``registry.operations``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import FromPath

from registry import api_keys, operations
from registry.core.auth import Client, Role
from registry.core.tiers import DEFAULT_TIER, Tier
from registry.http.deps import AppServices, read_payload
from registry.http.security import BEARER, allow

ClientId = FromPath[str]
KeyId = FromPath[str]
Expiry = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description="RFC 3339 with an offset; in the future, at most 3650 days ahead",
    ),
]


class CreateClient(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: str
    roles: list[str]
    tenant: str
    tier: Tier = DEFAULT_TIER
    """Its access tier: the base of its rate limit (``verified`` when absent)."""
    expires_at: Expiry | None = None
    """When the first key stops working (never, when absent)."""


class CreatedClient(msgspec.Struct, kw_only=True, frozen=True):
    client_id: str
    name: str
    tenant: str
    roles: list[str]
    api_key: str
    """Shown once; only its hash is stored."""


class SetTier(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    tier: Tier


class CreateKey(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    expires_at: Expiry | None = None
    """When the key stops working (never, when absent)."""


class CreatedKey(msgspec.Struct, kw_only=True, frozen=True):
    key_id: str
    api_key: str
    """Shown once; only its hash is stored."""
    created_at: datetime
    expires_at: datetime | None


class ClientList(msgspec.Struct, kw_only=True, frozen=True):
    clients: list[api_keys.ClientView]


class ClientsController(Controller):
    path = "/v1/admin/clients"
    tags = ["admin"]  # noqa: RUF012 - Litestar reads class attributes
    guards = [allow(Role.ADMIN)]  # noqa: RUF012 - Litestar reads class attributes
    security = BEARER

    @post(
        "/",
        summary="Create an API client and return its key (shown once)",
        opt={"body": CreateClient},
    )
    async def create(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[CreateClient],
    ) -> CreatedClient:
        async with services.unit_of_work(caller) as uow:
            new = await operations.create_client(
                uow,
                name=payload.name,
                roles=payload.roles,
                tenant=payload.tenant,
                expires_at=payload.expires_at,
                tier=payload.tier,
            )
        return CreatedClient(
            client_id=new.client.client_id,
            name=new.client.name,
            tenant=new.client.tenant,
            roles=sorted(r.value for r in new.client.roles),
            api_key=new.api_key,
        )

    @get("/", summary="Every API client with its keys (ids and dates, never secrets)")
    async def index(self, services: AppServices) -> ClientList:
        async with services.connection() as conn:
            return ClientList(
                clients=await api_keys.list_clients(conn, limits=services.settings.tier_limit_table)
            )

    @get("/{client_id:str}", summary="One API client with its keys (never secrets)")
    async def show(self, services: AppServices, client_id: ClientId) -> api_keys.ClientView:
        async with services.connection() as conn:
            return await api_keys.get_client(
                conn, client_id, limits=services.settings.tier_limit_table
            )

    @post(
        "/{client_id:str}/revoke",
        summary="Revoke a client: none of its keys works any more (idempotent)",
        description=(
            "This process refuses the client's keys from this answer on, every other service "
            "process within `REGISTRY_API_KEY_CACHE_SECONDS` (5 s by default). Revoking a "
            "revoked client answers it unchanged. The last enabled admin client with a live "
            "key cannot be revoked (409 `last_admin`), so the service never locks itself out. "
            "There is no way back: create a new client instead."
        ),
        status_code=200,
    )
    async def revoke(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        client_id: ClientId,
    ) -> api_keys.ClientView:
        async with services.unit_of_work(caller) as uow:
            revoked = await api_keys.revoke_client(
                uow, client_id, limits=services.settings.tier_limit_table
            )
        # Committed: no cached lookup may outlive it here.
        services.key_cache.forget()
        return revoked

    @post(
        "/{client_id:str}/tier",
        summary="Set a client's access tier (public, verified or enterprise)",
        description=(
            "The tier gives the client's base rate limit (`REGISTRY_TIER_LIMITS`); its risk "
            "factor scales it down while the gate sees it misbehave (`rate_limit` in the "
            "answer). Other service processes apply the new tier within "
            "`REGISTRY_API_KEY_CACHE_SECONDS`; this one at once."
        ),
        opt={"body": SetTier},
        status_code=200,
    )
    async def set_tier(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[SetTier],
        client_id: ClientId,
    ) -> api_keys.ClientView:
        async with services.unit_of_work(caller) as uow:
            view = await api_keys.set_tier(
                uow, client_id, payload.tier, limits=services.settings.tier_limit_table
            )
        services.key_cache.forget()
        return view

    @post(
        "/{client_id:str}/keys",
        summary="Add a key to a client and return it (shown once)",
        description=(
            "For rotation: add a key, move the caller to it, then revoke the old one. The body "
            "is optional; without `expires_at` the key does not expire. A revoked client gets "
            "no keys (409 `client_revoked`)."
        ),
        opt={"body": CreateKey, "body_optional": True},
    )
    async def add_key(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        caller: NamedDependency[Client],
        client_id: ClientId,
    ) -> CreatedKey:
        body = CreateKey()
        if await request.body():
            body = await read_payload(request, services)
        async with services.unit_of_work(caller) as uow:
            key = await api_keys.issue_key(uow, client_id, expires_at=body.expires_at)
        return CreatedKey(
            key_id=key.key_id,
            api_key=key.api_key,
            created_at=key.created_at,
            expires_at=key.expires_at,
        )

    @delete(
        "/{client_id:str}/keys/{key_id:str}",
        summary="Revoke one key of a client (idempotent)",
        description=(
            "This process refuses the key from this answer on, every other service process "
            "within `REGISTRY_API_KEY_CACHE_SECONDS` (5 s by default); the client's other "
            "keys keep working. A client may be left without a live key, except the last "
            "enabled admin client (409 `last_admin`)."
        ),
        status_code=200,
    )
    async def revoke_key(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        client_id: ClientId,
        key_id: KeyId,
    ) -> api_keys.KeyView:
        async with services.unit_of_work(caller) as uow:
            revoked = await api_keys.revoke_key(uow, client_id, key_id)
        services.key_cache.forget()
        return revoked
