"""The running service's parts, built once by the composition root and shared by handlers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from registry.api_keys import KeyUsage
from registry.core import db
from registry.core.auth import Client, KeyCache
from registry.core.uow import UnitOfWork, unit_of_work

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg

    from keys import KeyRing
    from keys.c2pa_identity import C2paIdentity
    from registry.consent.service import ConsentService
    from registry.core.ratelimit import RateLimiter
    from registry.core.settings import Settings
    from registry.gate import GateService
    from registry.provenance import ProvenanceService
    from registry.review import WebhookSender
    from registry.web import ReviewImageStore


@dataclass(kw_only=True)
class Services:
    settings: Settings
    pool: asyncpg.Pool
    keyring: KeyRing
    c2pa: C2paIdentity
    limiter: RateLimiter
    """Per-caller rate limits for the whole service: PostgreSQL, or Redis with
    REGISTRY_REDIS_URL (``registry.core.ratelimit``)."""
    embedded: db.EmbeddedPostgres | None = None
    consent: ConsentService
    provenance: ProvenanceService
    gate: GateService
    webhooks: WebhookSender
    """Checks takedown webhook URLs against REGISTRY_WEBHOOK_HOSTS and posts notices."""
    review_images: ReviewImageStore
    """The image of each decision sent to review, while its ticket is open."""
    key_usage: KeyUsage = field(default_factory=KeyUsage)
    """Keys used since the last write of ``last_used_at`` (see ``registry.api_keys``)."""
    key_cache: KeyCache = field(default_factory=lambda: KeyCache(0))
    """Recent API key lookups (REGISTRY_API_KEY_CACHE_SECONDS; off unless given one)."""
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with db.acquire(self.pool, wait=self.settings.db_acquire_timeout) as conn:
            yield conn

    async def close(self) -> None:
        """Close the pool and let go of the embedded server (stopping it if we were last)."""
        await self.gate.aclose()
        await self.limiter.aclose()
        await self.pool.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.release)

    @contextlib.asynccontextmanager
    async def unit_of_work(
        self, actor: Client | str, tenant: str | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """Run one operation as ``actor`` (a client, or a name such as "cli" or "system").

        Everything done on ``uow.conn`` and every event recorded with ``uow.record`` commit
        together or not at all (``registry.core.uow``); a client acts in its own tenant.
        """
        name = actor if isinstance(actor, str) else actor.client_id
        if isinstance(actor, Client):
            tenant = actor.tenant
        async with self.connection() as conn, unit_of_work(conn, actor=name, tenant=tenant) as uow:
            yield uow
