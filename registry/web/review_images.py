"""The generated image a reviewer looks at, kept only while its review ticket is open.

The gate stores the image of a ``review`` decision with ``put`` (in the transaction that
records the decision), a publisher's appeal of a blocked one with ``keep`` (the bytes the
gate decided on, checked by ``registry.review.attach_image``); the ticket's decision
removes it with ``delete`` (in the transaction that closes the ticket), an erasure of a
consent the decision relied on with ``forget_decisions``, and the retention worker once it
is older than the retention setting.
In between it is sealed with AES-256-GCM under a data key of its own (deleted with the row,
by a trigger), bound to its decision id, and only the console's image endpoint, for the
reviewer holding the claim, opens it. Images kept before migration 0016 are sealed under the
master key.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from registry.core.errors import Forbidden, Gone, NotFound, RegistryError
from registry.gate import repository as gate_repository
from registry.review import get_ticket, review_scope
from registry.web import repository

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractAsyncContextManager
    from datetime import timedelta

    from keys import MasterKey
    from registry.consent.records import DataKeys
    from registry.core.auth import Client
    from registry.core.uow import UnitOfWork

__all__ = [
    "MEDIA_TYPES",
    "ReviewImage",
    "ReviewImageErased",
    "ReviewImageStore",
    "expire_forever",
]

log = logging.getLogger(__name__)

MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
_AAD_PREFIX = b"review-image:"


class ReviewImage(msgspec.Struct, kw_only=True, frozen=True):
    media_type: str
    data: bytes

    def __repr__(self) -> str:
        return f"ReviewImage({self.media_type}, {len(self.data)} bytes)"


class ReviewImageErased(Gone):
    code = "review_image_erased"


class ReviewImageStore:
    """Seals and opens review images, each under a data key of its own."""

    def __init__(self, master_key: MasterKey, keys: DataKeys) -> None:
        self._master = master_key
        self._keys = keys

    def __repr__(self) -> str:
        return "ReviewImageStore()"

    async def put(
        self, conn: asyncpg.Connection, *, decision_id: str, media_type: str, data: bytes
    ) -> None:
        """Keep the image of a decision sent to review (idempotent for a retried decision)."""
        if media_type not in MEDIA_TYPES:
            msg = f"review images are JPEG, PNG or WebP, not {media_type!r}"
            raise ValueError(msg)
        key = await self._keys.new(conn)
        sealed = key.seal_bytes(data, aad=_AAD_PREFIX + decision_id.encode())
        await repository.insert_review_image(
            conn,
            decision_id=decision_id,
            media_type=media_type,
            sealed=sealed,
            data_key_id=key.key_id,
        )

    async def keep(
        self, conn: asyncpg.Connection, decision_id: str, media_type: str, data: bytes
    ) -> bool:
        """Keep the image of an appealed decision (``registry.review.attach_image``); False,
        with nothing new written, when it is kept already."""
        if await repository.review_image_exists(conn, decision_id):
            return False
        await self.put(conn, decision_id=decision_id, media_type=media_type, data=data)
        return True

    async def show_to_reviewer(
        self, uow: UnitOfWork, ticket_id: str, reviewer: Client
    ) -> ReviewImage:
        """The image of a ticket, for the reviewer holding its claim, recorded as viewed.

        Anyone else is refused, the ticket's tenant rule applying first (``review_scope``).
        """
        ticket = await get_ticket(uow.conn, ticket_id, scope=review_scope(reviewer.tenant))
        if ticket.status != "claimed" or ticket.claimed_by != reviewer.client_id:
            msg = "the image is shown only to the reviewer holding the claim on this ticket"
            raise Forbidden(msg)
        image = await self.get(uow.conn, ticket.decision_id)
        if image is None:
            if await gate_repository.decision_erased(uow.conn, ticket.decision_id):
                msg = "a consent this decision relied on was erased, and its image with it"
                raise ReviewImageErased(msg)
            msg = "this ticket's image is not kept"
            raise NotFound(msg)
        uow.record(
            "review.image_viewed",
            tenant=ticket.tenant,
            subject_type="review_ticket",
            subject_id=ticket.id,
            payload={"decision_id": ticket.decision_id},
        )
        return image

    async def get(self, conn: asyncpg.Connection, decision_id: str) -> ReviewImage | None:
        kept = await repository.review_image(conn, decision_id)
        if kept is None:
            return None
        media_type, sealed, key_id = kept
        aad = _AAD_PREFIX + decision_id.encode()
        if key_id is None:
            data = self._master.decrypt(sealed, aad=aad)
        else:
            key = await self._keys.get(conn, key_id)
            data = key.open_bytes(sealed, aad=aad)
        return ReviewImage(media_type=media_type, data=data)

    @staticmethod
    async def exists(conn: asyncpg.Connection, decision_id: str) -> bool:
        return await repository.review_image_exists(conn, decision_id)

    @staticmethod
    async def delete(conn: asyncpg.Connection, decision_id: str) -> bool:
        """Forget the image once its ticket is decided; True when there was one."""
        return await repository.delete_review_image(conn, decision_id)

    @staticmethod
    async def forget_decisions(conn: asyncpg.Connection, decision_ids: Sequence[str]) -> int:
        """Forget the images of these decisions (their consent was erased); how many."""
        return await repository.delete_review_images(conn, decision_ids)

    @staticmethod
    async def expire(conn: asyncpg.Connection, *, older_than: datetime) -> int:
        """Forget every image kept since before ``older_than``; how many."""
        return await repository.expire_review_images(conn, older_than)


async def expire_forever(
    store: ReviewImageStore,
    connection: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]],
    *,
    retention: timedelta,
    interval: float,
) -> None:
    """Forget the images kept longer than ``retention``, every ``interval`` seconds, until
    cancelled (a ticket nobody decides must not keep a person's image for ever)."""
    while True:
        try:
            async with connection() as conn:
                expired = await store.expire(conn, older_than=datetime.now(UTC) - retention)
            if expired:
                log.info("forgot %d review image(s) past their retention", expired)
        except (OSError, asyncpg.PostgresError, RegistryError) as exc:
            log.warning("review image expiry failed (%s); trying again", type(exc).__name__)
        await asyncio.sleep(interval)
