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

if TYPE_CHECKING:
    import asyncpg

    from keys import MasterKey

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
        await conn.execute(
            "INSERT INTO review_images (decision_id, media_type, sealed) VALUES ($1, $2, $3)"
            " ON CONFLICT (decision_id) DO NOTHING",
            decision_id,
            media_type,
            sealed,
        )

    async def get(self, conn: asyncpg.Connection, decision_id: str) -> ReviewImage | None:
        row = await conn.fetchrow(
            "SELECT media_type, sealed FROM review_images WHERE decision_id = $1", decision_id
        )
        if row is None:
            return None
        data = self._key.decrypt(bytes(row["sealed"]), aad=_AAD_PREFIX + decision_id.encode())
        return ReviewImage(media_type=row["media_type"], data=data)

    @staticmethod
    async def exists(conn: asyncpg.Connection, decision_id: str) -> bool:
        found = await conn.fetchval(
            "SELECT 1 FROM review_images WHERE decision_id = $1", decision_id
        )
        return found is not None

    @staticmethod
    async def delete(conn: asyncpg.Connection, decision_id: str) -> bool:
        """Forget the image once its ticket is decided; True when there was one."""
        deleted = await conn.fetchval(
            "DELETE FROM review_images WHERE decision_id = $1 RETURNING 1", decision_id
        )
        return deleted is not None
