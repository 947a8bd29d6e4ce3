"""Public key material (JWKS) and key rotation."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime

from registry import operations
from registry.core.auth import Client, Role
from registry.core.errors import NotFound
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow

PEM_CHAIN = "application/pem-certificate-chain"

# Verifiers re-fetch within this window, which is far shorter than the time a new key is
# published before it signs (a whole rotation period), so no verifier misses a key.
JWKS_MAX_AGE = 300


class RotationResult(msgspec.Struct, kw_only=True, frozen=True):
    activated_kid: str
    retiring_kid: str | None
    next_kid: str
    retire_after: str


class KeysController(Controller):
    tags = ["keys"]  # noqa: RUF012 - Litestar reads class attributes

    @get(
        "/.well-known/jwks.json",
        summary="Public keys that sign tokens, status lists, receipts and checkpoints",
        cache_control=CacheControlHeader(max_age=JWKS_MAX_AGE, public=True),
        media_type="application/jwk-set+json",
    )
    async def jwks(self, services: AppServices) -> dict[str, Any]:
        await services.keyring.refresh()
        return services.keyring.jwks()

    @get(
        "/v1/keys/c2pa",
        summary="The C2PA signing certificate chain (PEM, leaf first)",
        cache_control=CacheControlHeader(max_age=JWKS_MAX_AGE, public=True),
        media_type=PEM_CHAIN,
    )
    async def c2pa_chain(self, services: AppServices) -> str:
        return services.c2pa.chain_pem

    @get(
        "/v1/keys/c2pa/anchor",
        summary="The trust anchor a C2PA verifier should configure for our signatures (PEM)",
        cache_control=CacheControlHeader(max_age=JWKS_MAX_AGE, public=True),
        media_type=PEM_CHAIN,
    )
    async def c2pa_anchor(self, services: AppServices) -> str:
        anchor = services.c2pa.anchor_pem
        if anchor is None:
            msg = "the operator's C2PA anchor is on a public trust list and was not configured"
            raise NotFound(msg)
        return anchor

    @post(
        "/v1/admin/keys/rotate",
        summary="Rotate the token-signing key",
        description=(
            "The key published as `next` since the previous rotation starts signing; the "
            "active key is kept in the JWKS until every token it signed has expired; a fresh "
            "key is published as `next`. Concurrent rotations: one wins, the other gets 409."
        ),
        guards=[allow(Role.ADMIN)],
        security=BEARER,
        status_code=200,
    )
    async def rotate(
        self, services: AppServices, caller: NamedDependency[Client]
    ) -> Response[RotationResult]:
        async with services.unit_of_work(caller) as uow:
            rotation = await operations.rotate_keys(uow, services.keyring)
        await services.keyring.refresh(force=True)
        return Response(
            RotationResult(
                activated_kid=rotation.activated_kid,
                retiring_kid=rotation.retiring_kid,
                next_kid=rotation.next_kid,
                retire_after=rotation.retire_after.isoformat(),
            )
        )
