"""The generated image a reviewer looks at, kept only while its review ticket is open.

The gate stores the image of a ``review`` decision with ``put`` (in the transaction that
records the decision); the ticket's decision removes it with ``delete`` (in the transaction
that closes the ticket). In between it is sealed with AES-256-GCM under the master key,
bound to its decision id, and only the console's image endpoint, for the reviewer holding
the claim, opens it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from registry.core.errors import Forbidden, NotFound
from registry.review import get_ticket, review_scope
from registry.web import repository

if TYPE_CHECKING:
    import asyncpg

    from keys import MasterKey
    from registry.core.auth import Client
    from registry.core.uow import UnitOfWork

__all__ = ["MEDIA_TYPES", "ReviewImage", "ReviewImageStore"]

MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
_AAD_PREFIX = b"review-image:"


class ReviewImage(msgspec.Struct, kw_only=True, frozen=True):
    media_type: str
    data: bytes

    def __repr__(self) -> str:
        return f"ReviewImage({self.media_type}, {len(self.data)} bytes)"


class ReviewImageStore:
    """Seals and opens review images with the service's master key."""

    def __init__(self, master_key: MasterKey) -> None:
        self._key = master_key

    def __repr__(self) -> str:
        return "ReviewImageStore()"

    async def put(
        self, conn: asyncpg.Connection, *, decision_id: str, media_type: str, data: bytes
    ) -> None:
        """Keep the image of a decision sent to review (idempotent for a retried decision)."""
        if media_type not in MEDIA_TYPES:
            msg = f"review images are JPEG, PNG or WebP, not {media_type!r}"
            raise ValueError(msg)
        sealed = self._key.encrypt(data, aad=_AAD_PREFIX + decision_id.encode())
        await repository.insert_review_image(
            conn, decision_id=decision_id, media_type=media_type, sealed=sealed
        )

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
        media_type, sealed = kept
        data = self._key.decrypt(sealed, aad=_AAD_PREFIX + decision_id.encode())
        return ReviewImage(media_type=media_type, data=data)

    @staticmethod
    async def exists(conn: asyncpg.Connection, decision_id: str) -> bool:
        return await repository.review_image_exists(conn, decision_id)

    @staticmethod
    async def delete(conn: asyncpg.Connection, decision_id: str) -> bool:
        """Forget the image once its ticket is decided; True when there was one."""
        return await repository.delete_review_image(conn, decision_id)
