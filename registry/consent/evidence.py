"""The consent registry as the publish gate's ``moderation.ConsentEvidenceSource``.

Each check is the registry's online token verification (``ConsentService.verify``):
signature with one of our keys, issuer, time, audience, and the token's status read from
the database at that moment, so a withdrawal committed by any process a second earlier
fails the token. The audience asked for is the generator that made the image
(``metadata.generator_client_id``), not the caller: a token issued to another generator
never vouches for this image.

On top of that verification, the token must name the declared ``asset_id`` among its assets
(and, when the caller declared the asset's SHA-256, bind that hash: its commitment), and grant
every use the gate needs. The asset's SHA-256 and pHash in the answer, which the gate matches
the output against, are the registry's own records of the asset, never the token's (a token
carries only salted commitments). Every way a token fails is a reason in the answer; nothing
is raised for a bad token. Checks run concurrently, each on a pooled connection of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moderation import ConsentCheck
from registry.core import db
from verifier.tokens import Reason

if TYPE_CHECKING:
    from collections.abc import Collection

    import asyncpg

    from registry.consent.service import ConsentService
    from registry.core.auth import Client

__all__ = ["RegistryConsentEvidence"]


class RegistryConsentEvidence:
    """Answers the gate's consent questions for one request made by ``actor``."""

    def __init__(
        self,
        consent: ConsentService,
        *,
        pool: asyncpg.Pool,
        acquire_timeout: float,
        actor: Client,
    ) -> None:
        self._consent = consent
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._actor = actor

    def __repr__(self) -> str:
        return f"RegistryConsentEvidence(actor={self._actor.client_id!r})"

    async def check(
        self,
        *,
        token: str,
        asset_id: str,
        asset_sha256: str | None,
        generator_client_id: str,
        uses_needed: Collection[str],
    ) -> ConsentCheck:
        async with db.acquire(self._pool, wait=self._acquire_timeout) as conn:
            verified = await self._consent.verify(
                conn,
                actor=self._actor,
                token=token,
                use=None,
                asset_sha256=asset_sha256,
                audience=generator_client_id,
            )
            claims = verified.claims
            named = claims is not None and any(a.id == asset_id for a in claims.assets)
            role = recorded = None
            if claims is not None:
                role = await self._consent.signer_role(conn, claims.cid)
            if claims is not None and named:
                recorded = await self._consent.recorded_asset(conn, claims.cid, asset_id)
        reasons = list(verified.reasons)
        if claims is None:
            return ConsentCheck(valid=False, reasons=tuple(reasons or [Reason.MALFORMED]))
        if not named and Reason.ASSET_MISMATCH not in reasons:
            reasons.append(Reason.ASSET_MISMATCH)
        if any(use not in claims.uses for use in uses_needed):
            reasons.append(Reason.USE_NOT_PERMITTED)
        return ConsentCheck(
            valid=not reasons,
            reasons=tuple(dict.fromkeys(reasons)),
            consent_id=claims.cid,
            jti=claims.jti,
            uses=tuple(claims.uses),
            asset_sha256=recorded.sha256 if recorded is not None else None,
            asset_phash=recorded.phash if recorded is not None else None,
            signer_role=role,
        )
