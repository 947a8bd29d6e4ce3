"""Consent withdrawn after publishing, over HTTP: what it affects, webhooks, deliveries.

Notices themselves are sent by the takedown worker (``registry.review.takedown``) that the
composition root runs in the background of every service process.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import QueryParameter

from registry import review
from registry.core.auth import Client, Role
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow


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
        services: AppServices,
        caller: NamedDependency[Client],
        consent_id: Annotated[str, QueryParameter(min_length=1, max_length=128)],
    ) -> review.AffectedView:
        tenant = None if caller.has(Role.ADMIN) else caller.tenant
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
    async def register(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[RegisterWebhook],
    ) -> review.Webhook:
        async with services.unit_of_work(caller) as uow:
            return await review.register_webhook(
                uow,
                client_id=payload.client_id,
                url=payload.url,
                check_url=services.webhooks.check,
            )

    @get(
        "/v1/admin/webhooks/deliveries",
        summary="Takedown notice deliveries with every attempt (admin)",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
    )
    async def deliveries(
        self,
        services: AppServices,
        client_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        consent_id: Annotated[str | None, QueryParameter(max_length=128)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> DeliveryList:
        async with services.connection() as conn:
            found = await review.list_deliveries(
                conn, client_id=client_id, consent_id=consent_id, limit=limit
            )
        return DeliveryList(deliveries=found)
