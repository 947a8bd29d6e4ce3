"""Consent tokens: short-lived JWTs that prove a consent covers an asset and a use (DESIGN §4).

Header ``typ: consent+jwt``, ``alg`` EdDSA or ES256, ``kid`` of a registry key. Claims:
``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp`` (never past the consent's end), ``jti``,
``cid`` (consent id), ``assets`` [{id, sha256, phash?}], ``uses`` and ``status`` (an IETF
Token Status List reference). The lead signs the claims with
``keys.jws.sign_compact(msgspec.json.encode(claims), signer, typ=CONSENT_TOKEN_TYP)``.

Verification never raises on a token: it returns every reason the token fails, as stable
codes, and returns claims only for a token whose signature verified with a key of ours. The
header, signature and claim checks are ``verifier.tokens``, shared with the offline verifier;
this module adds what only the registry knows: its issuer, the live status and asset binding.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import TYPE_CHECKING, Any, Final

import msgspec

from registry.consent.errors import (
    AssetInvalidError,
    TtlInvalidError,
    UsesEmptyError,
    ValidityExpiredError,
)
from registry.consent.uses import require_known_uses
from verifier.tokens import (
    CONSENT_TOKEN_TYP,
    TOKEN_ALGORITHMS,
    ConsentTokenClaims,
    Reason,
    TokenAssetClaim,
    claim_reasons,
    decode_token,
    status_reasons,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from datetime import datetime, timedelta

    from keys.jwk import PublicKey

__all__ = [
    "CONSENT_TOKEN_TYP",
    "DEFAULT_PHASH_MAX_DISTANCE",
    "TOKEN_ALGORITHMS",
    "Reason",
    "TokenAsset",
    "TokenVerification",
    "build_claims",
    "verify_token",
]

# Hamming distance on a 64-bit imagehash phash below which two images count as the same photo
# (re-encoded, resized); unrelated photos land near 32.
DEFAULT_PHASH_MAX_DISTANCE: Final = 8
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PHASH_HEX = re.compile(r"[0-9a-f]{16}")


class TokenAsset(msgspec.Struct, kw_only=True, frozen=True):
    """An asset a token binds: its id, the SHA-256 of its file and, if known, its phash."""

    id: str
    sha256: str
    phash: str | None = None


class TokenVerification(msgspec.Struct, kw_only=True, frozen=True):
    """A token checked online: valid or why not, and, when its signature verified, its
    claims typed (what the registry reads) and as signed (what a caller is shown)."""

    valid: bool
    reasons: tuple[Reason, ...]
    claims: ConsentTokenClaims | None = None
    payload: dict[str, Any] | None = None


def build_claims(
    *,
    issuer: str,
    subject: str,
    audience: str,
    consent_id: str,
    assets: Sequence[TokenAsset],
    uses: Sequence[str],
    status_idx: int,
    status_uri: str,
    now: datetime,
    ttl: timedelta,
    not_after: datetime,
) -> dict[str, Any]:
    """The claims of a new consent token; ``exp`` is ``now + ttl`` but never past ``not_after``.

    Raises ttl_invalid, validity_expired (the consent ends before the token could start),
    use_unknown, uses_duplicate, invalid_value (no uses) or asset_invalid.
    """
    if ttl.total_seconds() <= 0:
        raise TtlInvalidError("a token lifetime must be positive")
    if not uses:
        raise UsesEmptyError("a token must carry at least one use")
    checked_uses = require_known_uses(uses)
    if not assets:
        raise AssetInvalidError("a token must bind at least one asset")
    for asset in assets:
        _require_sha256(asset.sha256)
        if asset.phash is not None:
            _require_phash(asset.phash)
    iat = math.floor(now.timestamp())
    exp = min(math.floor((now + ttl).timestamp()), math.floor(not_after.timestamp()))
    if exp <= iat:
        raise ValidityExpiredError("the consent ends before a token could be valid")
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "jti": secrets.token_urlsafe(16),
        "cid": consent_id,
        "assets": [_asset_claim(asset) for asset in assets],
        "uses": list(checked_uses),
        "status": {"status_list": {"idx": status_idx, "uri": status_uri}},
    }


def _asset_claim(asset: TokenAsset) -> dict[str, str]:
    claim = {"id": asset.id, "sha256": asset.sha256}
    if asset.phash is not None:
        claim["phash"] = asset.phash
    return claim


def verify_token(
    token: str,
    *,
    resolve_key: Callable[[str], PublicKey | None],
    issuer: str,
    audiences: Collection[str],
    status_of: Callable[[str, int], int | None],
    now: datetime,
    leeway_seconds: int,
    use: str | None = None,
    asset_sha256: str | None = None,
    asset_phash: str | None = None,
    phash_max_distance: int = DEFAULT_PHASH_MAX_DISTANCE,
) -> TokenVerification:
    """Check a consent token and report every reason it fails.

    ``resolve_key`` maps a (syntactically valid) ``kid`` to one of our public keys;
    ``status_of`` returns the status list value at ``(uri, idx)`` (0 valid, 1 invalid,
    2 suspended) or None for a list it does not know. ``leeway_seconds`` (the
    REGISTRY_TOKEN_LEEWAY setting) applies alike to ``exp``, ``nbf`` and ``iat``. ``use`` and
    the asset arguments are checked only when given; the asset binds when its SHA-256 equals,
    or its phash lies within ``phash_max_distance`` bits of, an asset of the token. Invalid
    ``asset_sha256`` or ``asset_phash`` arguments (the caller's input, not the token) raise
    asset_invalid.
    """
    if asset_sha256 is not None:
        _require_sha256(asset_sha256)
    if asset_phash is not None:
        _require_phash(asset_phash)
    decoded = decode_token(token, resolve_key)
    if isinstance(decoded, Reason):
        return TokenVerification(valid=False, reasons=(decoded,))
    claims = decoded.claims
    reference = claims.status.status_list
    reasons = [
        *claim_reasons(
            claims, now=now, leeway_seconds=leeway_seconds, issuer=issuer, audiences=audiences
        ),
        *status_reasons(status_of(reference.uri, reference.idx)),
    ]
    if (asset_sha256 is not None or asset_phash is not None) and not _binds(
        claims.assets, asset_sha256, asset_phash, phash_max_distance
    ):
        reasons.append(Reason.ASSET_MISMATCH)
    if use is not None and use not in claims.uses:
        reasons.append(Reason.USE_NOT_PERMITTED)
    return TokenVerification(
        valid=not reasons, reasons=tuple(reasons), claims=claims, payload=decoded.payload
    )


def _binds(
    assets: Sequence[TokenAssetClaim], sha256: str | None, phash: str | None, max_distance: int
) -> bool:
    for asset in assets:
        if sha256 is not None and asset.sha256 == sha256:
            return True
        if (
            phash is not None
            and asset.phash is not None
            and _PHASH_HEX.fullmatch(asset.phash)
            and (int(asset.phash, 16) ^ int(phash, 16)).bit_count() <= max_distance
        ):
            return True
    return False


def _require_sha256(value: str) -> None:
    if _SHA256_HEX.fullmatch(value) is None:
        raise AssetInvalidError("asset sha256 must be 64 lowercase hex digits")


def _require_phash(value: str) -> None:
    if _PHASH_HEX.fullmatch(value) is None:
        raise AssetInvalidError("asset phash must be 16 lowercase hex digits")
