"""Public key material (JWKS, key history) and key rotation."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter

from registry import operations
from registry.core.auth import Client, Role
from registry.core.errors import NotFound
from registry.core.key_history import key_history_document
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow
from verifier.key_history import KEY_HISTORY_MEDIA_TYPE

PEM_CHAIN = "application/pem-certificate-chain"

# Verifiers re-fetch within this window, which is far shorter than the time a new key is
# published before it signs (a whole rotation period), so no verifier misses a key.
JWKS_MAX_AGE = 300


KEY_HISTORY_DESCRIPTION = (
    "A compact JWS (`typ: key-history+jwt`) signed by the active key, whose payload "
    "`{iss, iat, keys}` lists every key that has ever signed: each `{jwk, not_before, "
    "not_after, signs}`, `not_after` null while the key still signs, `signs` what it signs "
    "(tokens, receipts, assertions, checkpoints, status_lists, notices). An artifact "
    "verifies offline, long after its key left the JWKS, when its `kid` is listed and its "
    "`iat` lies in that key's period. The document changes only when the keys rotate "
    "(`iat` is the active key's activation); send `If-None-Match` with its `ETag` to "
    "revalidate. `python -m verifier keys` checks it; docs/third-parties.md says what "
    "its self-signature proves."
)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


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
        "/.well-known/registry-keys.json",
        summary="Every key that ever signed, with its signing period (signed key history)",
        description=KEY_HISTORY_DESCRIPTION,
        media_type=KEY_HISTORY_MEDIA_TYPE,
        responses={
            304: ResponseSpec(data_container=None, description="Not modified: the ETag matches")
        },
    )
    async def key_history(
        self,
        services: AppServices,
        if_none_match: Annotated[
            str | None, HeaderParameter(name="If-None-Match", max_length=1024)
        ] = None,
    ) -> Response[str]:
        await services.keyring.refresh()
        token, etag = key_history_document(services.keyring, issuer=services.settings.public_issuer)
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={JWKS_MAX_AGE}"}
        if _matches(if_none_match, etag):
            return Response("", status_code=304, headers=headers, media_type=KEY_HISTORY_MEDIA_TYPE)
        return Response(token, headers=headers, media_type=KEY_HISTORY_MEDIA_TYPE)

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
            "active key is kept in the JWKS until every token it signed has expired, and in "
            "the key history (`/.well-known/registry-keys.json`) for good, with its signing "
            "period; its private key is erased; a fresh key is published as `next`. "
            "Concurrent rotations: one wins, the other gets 409."
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
