"""The running service's parts, built once by the composition root and shared by handlers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from registry.api_keys import KeyUsage
from registry.core import db

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
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with db.acquire(self.pool, wait=self.settings.db_acquire_timeout) as conn:
            yield conn

    async def close(self) -> None:
        """Close the pool and let go of the embedded server (stopping it if we were last)."""
        await self.gate.aclose()
        await self.pool.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.release)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside a transaction; everything in it commits or nothing does."""
        async with self.connection() as conn, conn.transaction():
            yield conn
