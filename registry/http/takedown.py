"""Consent withdrawn after publishing, over HTTP: what it affects, webhooks, deliveries.

Notices themselves are sent by the takedown worker (``registry.review.takedown``) that the
composition root runs in the background of every service process.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import QueryParameter

from registry import audit, review
from registry.auth import Role
from registry.http.body import read_json
from registry.http.security import BEARER, allow, current_client, services_of


class RegisterWebhook(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """A publisher client."""
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    """Where its takedown notices are posted; the host must be on REGISTRY_WEBHOOK_HOSTS."""


class DeliveryList(msgspec.Struct, kw_only=True, frozen=True):
    deliveries: list[review.Delivery]


class TakedownController(Controller):
    tags = ["takedown"]  # noqa: RUF012 - Litestar reads class attributes

    @get(
        "/v1/moderation/affected",
        summary="Gate decisions and signed outputs that used a consent's tokens",
        description=(
            "Publishers see their own tenant's decisions and the outputs signed for them; "
            "admins see everything. An unknown consent id gives empty lists."
        ),
        guards=[allow(Role.PUBLISHER, Role.ADMIN)],
        security=BEARER,
    )
    async def affected(
        self,
        request: Request[Any, Any, Any],
        consent_id: Annotated[str, QueryParameter(min_length=1, max_length=128)],
    ) -> review.AffectedView:
        services = services_of(request)
        client = current_client(request)
        tenant = None if client.has(Role.ADMIN) else client.tenant
        async with services.connection() as conn:
            return await review.affected(conn, consent_id, tenant=tenant)

    @post(
        "/v1/admin/webhooks",
        summary="Set a publisher client's takedown webhook (admin)",
        description=(
            "When a consent is withdrawn, each publisher with an affected decision gets a "
            "notice: a compact JWS (`typ: takedown+jwt`, body media type application/jwt) "
            "signed with the registry's keys (verify with /.well-known/jwks.json), retried "
            "with exponential backoff until the receiver answers 2xx."
        ),
        guards=[allow(Role.ADMIN)],
        security=BEARER,
        opt={"body": RegisterWebhook},
    )
    async def register(self, request: Request[Any, Any, Any]) -> review.Webhook:
        services = services_of(request)
        admin = current_client(request)
        body = await read_json(
            request,
            RegisterWebhook,
            max_bytes=services.settings.max_json_bytes,
            max_depth=services.settings.max_json_depth,
        )
        async with services.transaction() as conn:
            hook = await review.register_webhook(
                conn,
                client_id=body.client_id,
                url=body.url,
                check_url=services.webhooks.check,
                actor=admin.client_id,
            )
            await audit.append(
                conn,
                actor=admin.client_id,
                tenant=admin.tenant,
                action="webhook.registered",
                subject_type="api_client",
                subject_id=hook.client_id,
                # The host only: a path can carry the receiver's own secret.
                payload={"host": urlsplit(hook.url).hostname},
            )
        return hook

    @get(
        "/v1/admin/webhooks/deliveries",
        summary="Takedown notice deliveries with every attempt (admin)",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
    )
    async def deliveries(
        self,
        request: Request[Any, Any, Any],
        client_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        consent_id: Annotated[str | None, QueryParameter(max_length=128)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> DeliveryList:
        services = services_of(request)
        async with services.connection() as conn:
            found = await review.list_deliveries(
                conn, client_id=client_id, consent_id=consent_id, limit=limit
            )
        return DeliveryList(deliveries=found)
