"""Consent tokens: short-lived JWTs that prove a consent covers an asset and a use (DESIGN §4).

Header ``typ: consent+jwt``, ``alg`` EdDSA or ES256, ``kid`` of a registry key. Claims:
``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp`` (never past the consent's end), ``jti``,
``cid`` (consent id), ``ver`` (2, the token format), ``asset_salt`` (16 random bytes drawn
for this token, base64url), ``assets`` [{id, commit}], ``uses`` and ``status`` (an IETF
Token Status List reference). ``commit`` is ``base64url(SHA-256(salt || digest))``: the
16 salt bytes, then the 32 raw bytes of the SHA-256 of the photo's file, no separator,
base64url without padding (``verifier.tokens.asset_commitment``). A token is public and
outlives an erasure in anyone's copy, so it carries no photo hash: whoever holds the photo can
test it, nobody else learns its hash or can tell two tokens of the same photo apart. Tokens
issued before (no ``ver``; assets ``{id, sha256, phash?}`` in clear) still verify until they
expire. The lead signs the claims with
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

from keys.jwk import b64url_encode
from registry.consent.errors import (
    AssetInvalidError,
    TtlInvalidError,
    UsesEmptyError,
    ValidityExpiredError,
)
from registry.consent.uses import require_known_uses
from verifier.tokens import (
    ASSET_SALT_BYTES,
    CONSENT_TOKEN_TYP,
    TOKEN_ALGORITHMS,
    TOKEN_FORMAT,
    ConsentTokenClaims,
    Reason,
    asset_commitment,
    binds,
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
    "TOKEN_ALGORITHMS",
    "Reason",
    "TokenAsset",
    "TokenVerification",
    "build_claims",
    "verify_token",
]

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# What a token's answer never shows of a token that was revoked or suspended (withdrawal and
# erasure revoke): what binds its photos, in either format.
_ASSET_BINDINGS: Final = ("commit", "sha256", "phash")


class TokenAsset(msgspec.Struct, kw_only=True, frozen=True):
    """An asset a token binds: its id and the SHA-256 of its file (64 lowercase hex)."""

    id: str
    sha256: str


class TokenVerification(msgspec.Struct, kw_only=True, frozen=True):
    """A token checked online: valid or why not, and, when its signature verified, its
    claims typed (what the registry reads) and as signed (what a caller is shown; of a
    revoked or suspended token, without what binds its assets)."""

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
    salt = secrets.token_bytes(ASSET_SALT_BYTES)
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
        "ver": TOKEN_FORMAT,
        "asset_salt": b64url_encode(salt),
        "assets": [
            {"id": asset.id, "commit": asset_commitment(salt, asset.sha256)} for asset in assets
        ],
        "uses": list(checked_uses),
        "status": {"status_list": {"idx": status_idx, "uri": status_uri}},
    }


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
) -> TokenVerification:
    """Check a consent token and report every reason it fails.

    ``resolve_key`` maps a (syntactically valid) ``kid`` to one of our public keys;
    ``status_of`` returns the status list value at ``(uri, idx)`` (0 valid, 1 invalid,
    2 suspended) or None for a list it does not know. ``leeway_seconds`` (the
    REGISTRY_TOKEN_LEEWAY setting) applies alike to ``exp``, ``nbf`` and ``iat``. ``use`` and
    ``asset_sha256`` are checked only when given; the photo binds when its commitment (or, in
    a token of format 1, its SHA-256) is one the token carries. An invalid ``asset_sha256``
    (the caller's input, not the token) raises asset_invalid. The token carries no pHash: a
    re-encoded copy is matched on the registry's own records (the gate's), never on a token.
    """
    if asset_sha256 is not None:
        _require_sha256(asset_sha256)
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
    if asset_sha256 is not None and not binds(claims, asset_sha256):
        reasons.append(Reason.ASSET_MISMATCH)
    if use is not None and use not in claims.uses:
        reasons.append(Reason.USE_NOT_PERMITTED)
    return TokenVerification(
        valid=not reasons,
        reasons=tuple(reasons),
        claims=claims,
        payload=_shown(decoded.payload, reasons),
    )


def _shown(payload: dict[str, Any], reasons: Sequence[Reason]) -> dict[str, Any]:
    """The claims an answer may show: as signed, but for a revoked or suspended token (a
    withdrawn or erased consent's) without ``asset_salt`` and without what binds each asset
    (its commitment, or a format 1 token's hashes): only the asset ids remain."""
    if not {Reason.REVOKED, Reason.SUSPENDED} & set(reasons):
        return payload
    shown = {name: value for name, value in payload.items() if name != "asset_salt"}
    # The payload's assets were typed when it decoded (ConsentTokenClaims): a list of objects.
    shown["assets"] = [
        {name: value for name, value in asset.items() if name not in _ASSET_BINDINGS}
        for asset in payload["assets"]
    ]
    return shown


def _require_sha256(value: str) -> None:
    if _SHA256_HEX.fullmatch(value) is None:
        raise AssetInvalidError("asset sha256 must be 64 lowercase hex digits")
